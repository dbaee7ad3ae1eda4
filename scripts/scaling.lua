-- scaling.lua — desired concurrency per queue, and the audit log.
local s = sluice

local change_rules = {
  { "desired_concurrency", "integer", required = true, min = 0 },
  { "reason", "string", required = true, text = true, max = 500 },
  { "confirm", "boolean" },
  { "expected_version", "integer", min = 0 },
  { "duration_s", "integer", min = 1, max = 30 * 86400 },
  { "wait_ms", "integer", min = 0, max = 30000 },
}

-- Reads answer with the bytes cached with the queue-health model (a
-- sluice.body, with its ETag), never older than this replica's last change.
-- A token limited to queues (req.principal.queues) gets only its queues'
-- items, as a table built for it; routes naming a queue out of them were
-- refused before any handler ran (403 forbidden).
s.route("GET", "/api/v1/scaling", { scope = "scaling:read" }, function(req)
  if req.principal.queues then
    local list, err, info = s.scaling.list()
    if not list then return check.fail(info) end
    local mine = s.array({})
    for _, item in ipairs(list.items) do
      if s.auth.queue_allowed(item.queue) then mine[#mine + 1] = item end
    end
    list.items = mine
    return 200, list
  end
  local list, err, info = s.scaling.list_body()
  if not list then return check.fail(info) end
  return 200, list
end)

s.route("GET", "/api/v1/scaling/{queue}", { scope = "scaling:read" }, function(req)
  local target, err, info = s.scaling.get_body(req.params.queue)
  if not target then return check.fail(info) end
  return 200, target
end)

s.route("PUT", "/api/v1/scaling/{queue}", { scope = "scaling:write" }, function(req)
  local bad, body = check.body(req.body, change_rules)
  if bad then return bad, body end
  local b = req.body
  local result, err, info = s.scaling.set(req.params.queue, {
    desired_concurrency = b.desired_concurrency,
    reason = b.reason,
    confirm = b.confirm == true,
    expected_version = b.expected_version ~= s.null and b.expected_version or nil,
    duration_s = b.duration_s ~= s.null and b.duration_s or nil,
  })
  if not result then return check.fail(info) end
  -- Above approve_above (or validate() asked): stored, nothing changed yet.
  if result.approval then return 202, result end
  if b.wait_ms ~= nil and b.wait_ms ~= s.null then
    -- Answer once every live worker runs this version, or wait_ms passed.
    s.scaling.await(req.params.queue, result.version, b.wait_ms)
  end
  return 200, result
end)

-- The filters of the audit log's listings: each narrows it (api.md).
local one_of = {
  outcome = { applied = true, rejected = true, pending_approval = true, approved = true,
              expired = true },
  source = { ui = true, api = true, cli = true, expiry = true, policy = true, sluiced = true,
             autoscaler = true },
  kind = { scaling = true, flag = true, audit = true, policy = true, pause = true },
}
local history_args = { "limit", "before", "actor", "outcome", "source", "kind", "since", "until" }

-- The audit log as a token limited to queues sees it: the entries of its
-- queues only. Entries of no queue (flags, policy reloads, prunes: global
-- changes) are absent too. Reads pages of SCAN_PAGE entries, at most
-- SCAN_PAGES of them, until `limit` entries are found; next_before then
-- continues where the scan stopped (a next page may hold fewer, even none).
local SCAN_PAGE, SCAN_PAGES = 500, 20
local function scoped_history(opts)
  local want, before = opts.limit, opts.before
  local items = s.array({})
  opts.limit = SCAN_PAGE
  for _ = 1, SCAN_PAGES do
    opts.before = before
    local page, err, info = s.scaling.history(nil, opts)
    if not page then return nil, info end
    for i, e in ipairs(page.items) do
      if type(e.queue) == "string" and s.auth.queue_allowed(e.queue) then
        items[#items + 1] = e
        if #items == want then
          local more = i < #page.items or page.next_before ~= s.null
          return { items = items, next_before = more and e.id or s.null }
        end
      end
    end
    if page.next_before == s.null then return { items = items, next_before = s.null } end
    before = page.next_before
  end
  return { items = items, next_before = before }
end

local function history(queue, req)
  local q = req.query
  local limit, status, body = check.query_int(q, "limit", 50, 1, 500)
  if not limit then return status, body end
  local before, status2, body2 = check.query_int(q, "before", 0, 1, math.maxinteger)
  if not before then return status2, body2 end
  local opts = { limit = limit, before = before, since = q.since, ["until"] = q["until"] }
  for _, name in ipairs({ "queue", "actor", "outcome", "source", "kind" }) do
    local v = q[name]
    if v ~= nil then
      if v == "" or #v > 128 then
        return check.invalid(name, ("'%s' must be 1..128 characters"):format(name))
      end
      if one_of[name] and not one_of[name][v] then
        local names = {}
        for k in pairs(one_of[name]) do names[#names + 1] = k end
        table.sort(names)
        return check.invalid(name, ("'%s' must be one of %s"):format(name, table.concat(names, ", ")))
      end
      opts[name] = v
    end
  end
  local page, err, info
  if req.principal.queues and queue == nil then
    page, info = scoped_history(opts)
  else
    page, err, info = s.scaling.history(queue, opts)
  end
  if not page then return check.fail(info) end
  return 200, page
end

s.route("GET", "/api/v1/scaling/{queue}/history", { scope = "scaling:read", query = history_args }, function(req)
  return history(req.params.queue, req)
end)

local audit_args = { "queue" }
for _, name in ipairs(history_args) do audit_args[#audit_args + 1] = name end
s.route("GET", "/api/v1/audit", { scope = "scaling:read", query = audit_args }, function(req)
  return history(nil, req)
end)

-- ---- approvals and revert (issue 18) ------------------------------------------

local revert_rules = {
  { "to_version", "integer", required = true, min = 1 },
  { "reason", "string", required = true, text = true, max = 500 },
  { "confirm", "boolean" },
  { "wait_ms", "integer", min = 0, max = 30000 },
}

-- Apply the value version to_version set, through every check (a value
-- above approve_above waits for approval: 202 as a PUT).
s.route("POST", "/api/v1/scaling/{queue}/revert", { scope = "scaling:write" }, function(req)
  local bad, body = check.body(req.body, revert_rules)
  if bad then return bad, body end
  local b = req.body
  local result, err, info = s.scaling.revert(req.params.queue, {
    to_version = b.to_version, reason = b.reason, confirm = b.confirm == true,
  })
  if not result then return check.fail(info) end
  if result.approval then return 202, result end
  if b.wait_ms ~= nil and b.wait_ms ~= s.null then
    s.scaling.await(req.params.queue, result.version, b.wait_ms)
  end
  return 200, result
end)

local approval_status = { pending = true, approved = true, rejected = true, expired = true, all = true }

-- The approvals of the caller's queues; pending ones unless ?status= says.
s.route("GET", "/api/v1/approvals", { scope = "scaling:approve", query = { "status", "limit" } }, function(req)
  local status = req.query.status or "pending"
  if not approval_status[status] then
    return check.invalid("status", "'status' must be one of all, approved, expired, pending, rejected")
  end
  local limit, st, body = check.query_int(req.query, "limit", 50, 1, 500)
  if not limit then return st, body end
  local page, err, info = s.scaling.approvals({ status = status, limit = limit })
  if not page then return check.fail(info) end
  return 200, page
end)

-- One approval: whoever may read the queue may follow their request.
s.route("GET", "/api/v1/approvals/{id}", { scope = "scaling:read" }, function(req)
  local a, err, info = s.scaling.approval(req.params.id)
  if not a then return check.fail(info) end
  return 200, a
end)

local approve_rules = { { "reason", "string", text = true, max = 500 } }
local reject_rules = { { "reason", "string", required = true, text = true, max = 500 } }

s.route("POST", "/api/v1/approvals/{id}/approve", { scope = "scaling:approve" }, function(req)
  local bad, body = check.body(req.body, approve_rules)
  if bad then return bad, body end
  local r = req.body.reason
  local result, err, info = s.scaling.approve(req.params.id, { reason = r ~= s.null and r or nil })
  if not result then return check.fail(info) end
  return 200, result
end)

s.route("POST", "/api/v1/approvals/{id}/reject", { scope = "scaling:approve" }, function(req)
  local bad, body = check.body(req.body, reject_rules)
  if bad then return bad, body end
  local result, err, info = s.scaling.reject(req.params.id, { reason = req.body.reason })
  if not result then return check.fail(info) end
  return 200, result
end)

-- Pause and resume (issue 18): the queue's workers take no new jobs and
-- finish the ones they run, whatever min says; desired is kept, and a
-- resume returns to it. Pausing a paused queue (or resuming a running one)
-- answers 200 with "changed": false and stores nothing.
local pause_rules = {
  { "reason", "string", required = true, text = true, max = 500 },
  { "duration_s", "integer", min = 1, max = 30 * 86400 },
  { "wait_ms", "integer", min = 0, max = 30000 },
}
local resume_rules = {
  { "reason", "string", required = true, text = true, max = 500 },
  { "wait_ms", "integer", min = 0, max = 30000 },
}

-- The handler of a pause or resume: rules check the body, call is
-- sluice.scaling.pause or .resume.
local function pause_handler(rules, call)
  return function(req)
    local bad, body = check.body(req.body, rules)
    if bad then return bad, body end
    local b = req.body
    local result, err, info = call(req.params.queue, {
      reason = b.reason,
      duration_s = b.duration_s ~= s.null and b.duration_s or nil,
    })
    if not result then return check.fail(info) end
    if b.wait_ms ~= nil and b.wait_ms ~= s.null then
      -- Answer once every live worker acknowledged this version, or wait_ms passed.
      s.scaling.await(req.params.queue, result.version, b.wait_ms)
    end
    return 200, result
  end
end

s.route("POST", "/api/v1/scaling/{queue}/pause", { scope = "scaling:write" },
  pause_handler(pause_rules, s.scaling.pause))
s.route("POST", "/api/v1/scaling/{queue}/resume", { scope = "scaling:write" },
  pause_handler(resume_rules, s.scaling.resume))
