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
s.route("GET", "/api/v1/scaling", { scope = "scaling:read" }, function()
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
  if b.wait_ms ~= nil and b.wait_ms ~= s.null then
    -- Answer once every live worker runs this version, or wait_ms passed.
    s.scaling.await(req.params.queue, result.version, b.wait_ms)
  end
  return 200, result
end)

-- The filters of the audit log's listings: each narrows it (api.md).
local one_of = {
  outcome = { applied = true, rejected = true },
  source = { ui = true, api = true, cli = true, expiry = true, policy = true, sluiced = true },
  kind = { scaling = true, flag = true, audit = true, policy = true, pause = true },
}
local history_args = { "limit", "before", "actor", "outcome", "source", "kind", "since", "until" }

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
  local page, err, info = s.scaling.history(queue, opts)
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

local function pause_route(verb, rules, call)
  s.route("POST", "/api/v1/scaling/{queue}/" .. verb, { scope = "scaling:write" }, function(req)
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
  end)
end

pause_route("pause", pause_rules, s.scaling.pause)
pause_route("resume", resume_rules, s.scaling.resume)
