-- 00_check.lua — request validation shared by every handler file.
--
-- Files in scripts/ load in name order into one state, so this one runs
-- first and leaves the global `check` for the others. Each function returns
-- nothing when the input is fine, or the (status, body) of a 400 answer.

check = {}
local s = sluice

local function invalid(field, message)
  return s.error(400, "invalid_field", message, { field = field })
end
check.invalid = invalid

local function short(name)
  name = tostring(name)
  if #name > 64 then name = name:sub(1, 64) .. "..." end
  return name
end

-- One rule per field, in the order errors should be reported:
--   { "name", "integer"|"string"|"boolean"|"array", required = bool,
--     min = n, max = n, text = true (1..max characters, not blank) }
function check.body(body, rules)
  local known = {}
  for _, rule in ipairs(rules) do known[rule[1]] = rule end
  -- Unknown fields first: a typo must never be silently ignored.
  local unknown = {}
  for k in pairs(body) do
    if not known[k] then unknown[#unknown + 1] = tostring(k) end
  end
  if #unknown > 0 then
    table.sort(unknown)
    return invalid(unknown[1], ("unknown field '%s'"):format(short(unknown[1])))
  end
  for _, rule in ipairs(rules) do
    local name, kind, v = rule[1], rule[2], body[rule[1]]
    if v == nil or v == s.null then
      if rule.required then return invalid(name, ("'%s' is required"):format(name)) end
    elseif kind == "integer" then
      if math.type(v) ~= "integer" then
        return invalid(name, ("'%s' must be an integer"):format(name))
      end
      if rule.min and v < rule.min then
        return invalid(name, ("'%s' must be at least %d"):format(name, rule.min))
      end
      if rule.max and v > rule.max then
        return invalid(name, ("'%s' must be at most %d"):format(name, rule.max))
      end
    elseif kind == "string" then
      if type(v) ~= "string" then
        return invalid(name, ("'%s' must be a string"):format(name))
      end
      if rule.text then
        local chars = utf8.len(v)
        if not chars then return invalid(name, ("'%s' is not valid UTF-8"):format(name)) end
        if chars < 1 or not v:find("%S") then
          return invalid(name, ("'%s' must not be empty"):format(name))
        end
        if chars > rule.max then
          return invalid(name, ("'%s' is longer than %d characters"):format(name, rule.max))
        end
      end
    elseif kind == "boolean" then
      if type(v) ~= "boolean" then
        return invalid(name, ("'%s' must be true or false"):format(name))
      end
    elseif kind == "array" then
      if type(v) ~= "table" then
        return invalid(name, ("'%s' must be a list"):format(name))
      end
    end
  end
end

-- Query arguments a route does not take are refused, like unknown body
-- fields: a misspelt ?limt=5 must not be silently ignored. allowed lists the
-- names the route reads (may be empty).
function check.query(query, allowed)
  local ok = {}
  for _, name in ipairs(allowed or {}) do ok[name] = true end
  local unknown = {}
  for k in pairs(query or {}) do
    if not ok[k] then unknown[#unknown + 1] = tostring(k) end
  end
  if #unknown > 0 then
    table.sort(unknown)
    return invalid(unknown[1], ("unknown query argument '%s'"):format(short(unknown[1])))
  end
end

-- A query parameter that must be an integer within [min, max]. Returns the
-- value, or nil followed by the (status, body) of a 400 answer.
function check.query_int(query, name, default, min, max)
  local text = query[name]
  if text == nil then return default end
  local n = text:match("^%d+$") and math.tointeger(tonumber(text))
  if not n or n < min or n > max then
    return nil, invalid(name, ("'%s' must be an integer in %d..%d"):format(name, min, max))
  end
  return n
end

-- Turn the third result of a failed sluice.* call (nil, message, info) into
-- an answer: info = {status, code, message, details, retry_after}.
function check.fail(info)
  local headers
  if info.retry_after then headers = { ["Retry-After"] = tostring(info.retry_after) } end
  return s.error(info.status, info.code, info.message, info.details, headers)
end

-- Every route refuses query arguments it does not read: a route lists the
-- ones it takes as opts.query (none by default), and this wrapper checks
-- them before the handler runs.
local route = s.route
function s.route(method, path, opts, handler)
  local allowed = opts.query or {}
  local rest = {}
  for k, v in pairs(opts) do if k ~= "query" then rest[k] = v end end
  return route(method, path, rest, function(req, ...)
    local bad, body = check.query(req.query, allowed)
    if bad then return bad, body end
    return handler(req, ...)
  end)
end
