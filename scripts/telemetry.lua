-- telemetry.lua — queue health: the snapshot, live events, Prometheus
-- metrics and readiness.
local s = sluice

-- The bytes cached with the queue-health model, with their ETag (a GET
-- with a matching If-None-Match gets 304).
local function snapshot()
  return 200, s.telemetry.snapshot_body()
end

s.route("GET", "/admin/runtime-scaling", { scope = "scaling:read" }, snapshot)
-- The same snapshot under the name existing dashboards use.
s.route("GET", "/admin/event-health", { scope = "scaling:read" }, snapshot)

-- 24 hours of samples per queue, every 10 s, with the desired-concurrency
-- changes as markers (api.md). Rendered in C from the history's rings.
local ranges = { ["15m"] = true, ["1h"] = true, ["6h"] = true, ["24h"] = true }
s.route("GET", "/admin/runtime-scaling/history", { scope = "scaling:read", query = { "queue", "range" } }, function(req)
  local queue, range = req.query.queue, req.query.range or "1h"
  if queue == nil or queue == "" then return check.invalid("queue", "'queue' is required") end
  if not ranges[range] then return check.invalid("range", "'range' must be one of 15m, 1h, 6h, 24h") end
  local body, err, info = s.telemetry.history_body(queue, range)
  if not body then return check.fail(info) end
  return 200, body
end)

-- Server-Sent Events: a snapshot at once, then "change", "alert" and
-- "snapshot" events (at least every 2 s) and a ": ping" every 15 s.
s.route("GET", "/admin/runtime-scaling/events", { scope = "scaling:read" }, function()
  s.telemetry.stream()
  return 200
end)

s.route("GET", "/metrics", { scope = "none" }, function()
  local body, err, info = s.telemetry.metrics_body()   -- with its content type
  if not body then return check.fail(info) end
  return 200, body
end)

-- Ready when both the database and Redis answer and the database can take
-- changes; otherwise 503 naming the part that cannot ("full": its volume).
s.route("GET", "/readyz", { scope = "none" }, function()
  local parts = s.telemetry.ready()
  if parts.store == "up" and parts.redis == "up" then
    return 200, { status = "ready", store = parts.store, redis = parts.redis }
  end
  local down = {}
  if parts.store ~= "up" and parts.store ~= "full" then down[#down + 1] = "store" end
  if parts.redis ~= "up" then down[#down + 1] = "redis" end
  local why = #down > 0 and table.concat(down, " and ") .. " not answering" or nil
  if parts.store == "full" then
    -- reads still answer; changes get 507 store_full until there is space
    why = "store volume full" .. (why and "; " .. why or "")
  end
  return s.error(503, "not_ready", why, parts)
end)
