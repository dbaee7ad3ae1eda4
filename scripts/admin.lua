-- admin.lua — feature flags, API tokens and the policy status.
local s = sluice

-- Keep the entries of list whose field (or the entry itself, field nil)
-- names a queue the caller may see.
local function only_mine(list, field)
  local mine = s.array({})
  for _, e in ipairs(list or {}) do
    local q = field and e[field] or e
    if type(q) == "string" and s.auth.queue_allowed(q) then mine[#mine + 1] = e end
  end
  return mine
end

s.route("GET", "/api/v1/policies", { scope = "scaling:read" }, function(req)
  local status = s.policy.status()
  if req.principal.queues then
    -- A token limited to queues sees its queues and their failing rules.
    status.queues = only_mine(status.queues)
    status.failing_rules = only_mine(status.failing_rules, "queue")
  end
  return 200, status
end)

-- Flags act on every queue: a token limited to some may read them, not
-- change them.
local function global_refused(req, what)
  if req.principal.queues then
    return s.error(403, "forbidden",
      ("these credentials are limited to queues (%s): %s acts on every queue")
        :format(table.concat(req.principal.queues, ","), what),
      { queues = table.concat(req.principal.queues, ",") })
  end
end

s.route("GET", "/api/v1/flags", { scope = "admin" }, function()
  local flags, err, info = s.flags.list()
  if not flags then return check.fail(info) end
  return 200, flags
end)

s.route("GET", "/api/v1/flags/{name}", { scope = "admin" }, function(req)
  local flag, err, info = s.flags.get(req.params.name)
  if not flag then return check.fail(info) end
  return 200, flag
end)

s.route("PUT", "/api/v1/flags/{name}", { scope = "admin" }, function(req)
  local refused, rbody = global_refused(req, "a feature flag")
  if refused then return refused, rbody end
  local bad, body = check.body(req.body, {
    { "enabled", "boolean", required = true },
    { "reason", "string", required = true, text = true, max = 500 },
  })
  if bad then return bad, body end
  local flag, err, info = s.flags.set(req.params.name, req.body.enabled, req.body.reason)
  if not flag then return check.fail(info) end
  return 200, flag
end)

s.route("GET", "/api/v1/tokens", { scope = "admin" }, function()
  local list, err, info = s.auth.list_tokens()
  if not list then return check.fail(info) end
  return 200, list
end)

s.route("POST", "/api/v1/tokens", { scope = "admin" }, function(req)
  local bad, body = check.body(req.body, {
    { "name", "string", required = true },
    { "scopes", "array", required = true },
    { "queues", "array" },
    { "expires_in_s", "integer", min = 1, max = 10 * 365 * 86400 },
  })
  if bad then return bad, body end
  local b = req.body
  if not b.name:match("^[%w_.:-]+$") or #b.name > 64 or b.name:match("^[.-]") then
    return check.invalid("name", "'name' must be 1..64 of A-Z a-z 0-9 _ . : -")
  end
  for _, scope in ipairs(b.scopes) do
    if type(scope) ~= "string" then return check.invalid("scopes", "'scopes' must be strings") end
    -- One scope per element: "scaling:read,admin" is not two scopes.
    if not scope:match("^[%w:_-]+$") then
      return check.invalid("scopes", ("'%s' is not a scope (one of scaling:read, scaling:write, scaling:approve, admin per element)")
        :format(scope:sub(1, 64)))
    end
  end
  if #b.scopes == 0 then return check.invalid("scopes", "'scopes' must not be empty") end
  -- queues: names or trailing-'*' prefixes; absent (or null) for every queue.
  local queues = b.queues ~= s.null and b.queues or nil
  if queues then
    for _, q in ipairs(queues) do
      if type(q) ~= "string" then return check.invalid("queues", "'queues' must be strings") end
    end
    if #queues == 0 then
      return check.invalid("queues", "'queues' must not be empty (leave it out for every queue)")
    end
  end
  local created, err, info = s.auth.create_token {
    name = b.name, scopes = b.scopes, queues = queues,
    expires_in_s = b.expires_in_s ~= s.null and b.expires_in_s or nil,
  }
  if not created then
    -- The binding names queues itself; any other invalid field is a scope.
    if info.code == "invalid_field" and not (info.details and info.details.field == "queues") then
      info.details = { field = "scopes" }
    end
    return check.fail(info)
  end
  return 201, created
end)

s.route("DELETE", "/api/v1/tokens/{id}", { scope = "admin" }, function(req)
  local ok, err, info = s.auth.revoke_token(req.params.id)
  if not ok then return check.fail(info) end
  return 200, { id = req.params.id, revoked = true }
end)
