-- admin.lua — feature flags, API tokens and the policy status.
local s = sluice

s.route("GET", "/api/v1/policies", { scope = "scaling:read" }, function()
  return 200, s.policy.status()
end)

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
  local created, err, info = s.auth.create_token {
    name = b.name, scopes = b.scopes,
    expires_in_s = b.expires_in_s ~= s.null and b.expires_in_s or nil,
  }
  if not created then
    if info.code == "invalid_field" then info.details = { field = "scopes" } end
    return check.fail(info)
  end
  return 201, created
end)

s.route("DELETE", "/api/v1/tokens/{id}", { scope = "admin" }, function(req)
  local ok, err, info = s.auth.revoke_token(req.params.id)
  if not ok then return check.fail(info) end
  return 200, { id = req.params.id, revoked = true }
end)
