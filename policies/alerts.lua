-- alerts.lua — alert rules, evaluated on every tick for every worker (w) or
-- queue (q). A rule fires after its condition held for for_s seconds and
-- resolves when it stops holding.
--   w: id, concurrency, version, active, state, paused
--   q: queue, desired, version, paused, worker_count, depth = {waiting, active, ...}

alert "concurrency_mismatch" {
  severity = "warning", for_s = 30,
  worker = function(w, q) return w.concurrency ~= q.desired end,
  message = function(w, q)
    return ("%s runs %d, desired %d"):format(w.id, w.concurrency, q.desired)
  end,
}

alert "no_workers" {
  severity = "critical", for_s = 60,
  queue = function(q) return q.desired > 0 and q.worker_count == 0 end,
  message = function(q) return ("%s wants %d but has no workers"):format(q.queue, q.desired) end,
}

alert "backlog" {
  severity = "warning", for_s = 120,
  queue = function(q) return q.depth.waiting > 10000 end,
  message = function(q) return ("%s has %d jobs waiting"):format(q.queue, q.depth.waiting) end,
}
