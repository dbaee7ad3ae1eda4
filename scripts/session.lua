-- session.lua — browser login/logout (cookie sessions) and whoami.
local s = sluice

-- Log in with a token: sets the sluice_session cookie (HttpOnly,
-- SameSite=Strict) and returns the CSRF token the page must send back on
-- every unsafe request.
s.route("POST", "/api/v1/session", { scope = "none" }, function(req)
  local bad, body = check.body(req.body, { { "token", "string", required = true } })
  if bad then return bad, body end
  local who, cookie, info = s.auth.login(req.body.token)
  if not who then return check.fail(info) end
  return 200, who, { ["Set-Cookie"] = cookie }
end)

s.route("DELETE", "/api/v1/session", { scope = "any" }, function()
  local cookie, err, info = s.auth.logout()
  if not cookie then return check.fail(info) end
  return 200, { logged_out = true }, { ["Set-Cookie"] = cookie }
end)

s.route("GET", "/api/v1/whoami", { scope = "any" }, function()
  local who, err, info = s.auth.whoami()
  if not who then return check.fail(info) end
  return 200, who
end)
