-- health.lua — liveness. /readyz arrives with Redis propagation.
local s = sluice

s.route("GET", "/healthz", { scope = "none" }, function()
  return 200, { status = "ok" }
end)
