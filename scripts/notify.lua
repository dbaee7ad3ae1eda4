-- notify.lua — the notification outbox: what was delivered to the
-- policies' notify sinks, what is still retrying and what failed.
local s = sluice

local statuses = { pending = true, delivered = true, failed = true }

s.route("GET", "/api/v1/notifications", { scope = "admin", query = { "limit", "sink", "status" } }, function(req)
  local q = req.query
  local limit, status, body = check.query_int(q, "limit", 50, 1, 500)
  if not limit then return status, body end
  if q.sink ~= nil and (#q.sink > 64 or not q.sink:match("^[%w_.:-]+$")) then
    return check.invalid("sink", "'sink' must be 1..64 of A-Z a-z 0-9 _ . : -")
  end
  if q.status ~= nil and not statuses[q.status] then
    return check.invalid("status", "'status' must be one of delivered, failed, pending")
  end
  local page, err, info = s.notify.list { limit = limit, sink = q.sink, status = q.status }
  if not page then return check.fail(info) end
  return 200, page
end)
