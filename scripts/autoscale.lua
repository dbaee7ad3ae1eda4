-- autoscale.lua — the autoscaling rules of the policies (issue 19): what
-- each rule last did and why, and the operators' holds. Rules run on the
-- leader; every replica answers, from the state the leader stores.
local s = sluice

s.route("GET", "/api/v1/autoscalers", { scope = "scaling:read" }, function()
  local page, err, info = s.autoscale.list()
  if not page then return check.fail(info) end
  return 200, page
end)

s.route("GET", "/api/v1/autoscalers/{queue}", { scope = "scaling:read" }, function(req)
  local item, err, info = s.autoscale.get(req.params.queue)
  if not item then return check.fail(info) end
  return 200, item
end)

-- A hold keeps the rule evaluating (its proposals shown) but applying
-- nothing until it ends; a release ends it, and the hold after a manual
-- change made before it.
local hold_rules = {
  { "duration_s", "integer", required = true, min = 1, max = 604800 },
  { "reason", "string", text = true, max = 500 },
}
local release_rules = {
  { "reason", "string", text = true, max = 500 },
}

s.route("POST", "/api/v1/autoscalers/{queue}/hold", { scope = "scaling:write" }, function(req)
  local bad, body = check.body(req.body, hold_rules)
  if bad then return bad, body end
  local b = req.body
  local item, err, info = s.autoscale.hold(req.params.queue, {
    duration_s = b.duration_s,
    reason = b.reason ~= s.null and b.reason or nil,
  })
  if not item then return check.fail(info) end
  return 200, item
end)

s.route("POST", "/api/v1/autoscalers/{queue}/release", { scope = "scaling:write" }, function(req)
  local bad, body = check.body(req.body, release_rules)
  if bad then return bad, body end
  local b = req.body
  local item, err, info = s.autoscale.release(req.params.queue, {
    reason = b.reason ~= s.null and b.reason or nil,
  })
  if not item then return check.fail(info) end
  return 200, item
end)
