-- autoscale_lib.lua — the rule helpers of every policy state: sluice.cron,
-- sluice.schedule and sluice.backlog_target. Compiled into sluiced
-- (tools/embed-lua.sh) and run once per policy state by autoscale_lib_open,
-- which passes the table `sluice` and the C function sluice.localtime.
--
-- The helpers are rules themselves: function(q, ctx) -> desired, reason.
-- They run under the sandbox budget of the state, so nothing here scans
-- minute by minute: a cron expression is searched backwards day by day
-- (at most 9 days for the 8-day lookback) with per-field tables that answer
-- "the latest allowed value at or below x" in one lookup.
--
-- Times: ms are milliseconds since the epoch; a "wall minute" is the local
-- date and time of the server's time zone counted as minutes since
-- 1970-01-01 00:00 as if that zone had no offset and no DST. Searching in
-- wall minutes and converting back to instants is what gives the DST rules
-- documented in docs/lua-api.md: a minute the clock skips fires when the
-- clock jumps, a minute the clock repeats fires once, at its first pass.

local sluice, localtime = ...

local type, pairs, ipairs, tostring, tonumber, error = type, pairs, ipairs, tostring, tonumber, error
local setmetatable = setmetatable
local tointeger, mtype, huge, ceil = math.tointeger, math.type, math.huge, math.ceil
local format = string.format

local MINUTE_MS = 60000
local DAY_MIN = 1440
local LOOKBACK_MS = 8 * 86400 * 1000
local LOOKBACK_MAX_MS = 31 * 86400 * 1000
local EXPR_MAX = 200

-- ---- calendar arithmetic (proleptic Gregorian; H. Hinnant's algorithms) ----

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = z // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

-- The wall minute of instant ms and the zone's offset then (seconds east).
local function wall_of(ms)
  local t = localtime(ms)
  return days_from_civil(t.year, t.month, t.day) * DAY_MIN + t.hour * 60 + t.min, t.utcoff
end

-- The instant (ms) at which wall minute w fires. Two probes six hours either
-- side find the offsets before and after any DST change near w. A wall
-- minute that exists once or twice fires at its first occurrence; one the
-- clock skips fires at the change itself (found by bisection over minutes).
local function instant_of(w, off_hint)
  local base = w * MINUTE_MS
  local guess = base - off_hint * 1000
  local _, o1 = wall_of(guess - 6 * 3600000)
  local _, o2 = wall_of(guess + 6 * 3600000)
  local first
  for _, o in ipairs({o1, o2}) do
    local t = base - o * 1000
    if wall_of(t) == w and (first == nil or t < first) then first = t end
  end
  if first then return first end
  local lo = base - (o1 > o2 and o1 or o2) * 1000      -- wall before w
  local hi = base - (o1 > o2 and o2 or o1) * 1000      -- wall after w
  while hi - lo > MINUTE_MS do
    local mid = lo + ((hi - lo) // (2 * MINUTE_MS)) * MINUTE_MS
    if mid <= lo then mid = lo + MINUTE_MS end
    if wall_of(mid) > w then hi = mid else lo = mid end
  end
  return hi
end

-- ---- cron expressions ------------------------------------------------------------

local MONTHS = {jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6,
                jul = 7, aug = 8, sep = 9, oct = 10, nov = 11, dec = 12}
local DAYS = {sun = 0, mon = 1, tue = 2, wed = 3, thu = 4, fri = 5, sat = 6}
local DAY_NAMES = {[0] = "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
local MONTH_NAMES = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

local FIELDS = {
  {name = "minute", lo = 0, hi = 59},
  {name = "hour", lo = 0, hi = 23},
  {name = "day-of-month", lo = 1, hi = 31},
  {name = "month", lo = 1, hi = 12, names = MONTHS},
  {name = "day-of-week", lo = 0, hi = 7, star_hi = 6, names = DAYS},
}

local MACROS = {
  ["@yearly"] = "0 0 1 1 *", ["@annually"] = "0 0 1 1 *", ["@monthly"] = "0 0 1 * *",
  ["@weekly"] = "0 0 * * 0", ["@daily"] = "0 0 * * *", ["@midnight"] = "0 0 * * *",
  ["@hourly"] = "0 * * * *",
}

local function parse_value(f, s)
  local n
  if s:find("^%d+$") then
    n = tointeger(tonumber(s))
  elseif f.names then
    n = f.names[s:lower()]
  end
  if n == nil then
    return nil, format("'%s' is not a number%s", s, f.names and " or a name" or "")
  end
  if n < f.lo or n > f.hi then
    return nil, format("%d is out of range %d-%d", n, f.lo, f.hi)
  end
  return n
end

-- One element of a list: *, a, a-b, */n or a-b/n. Adds its values to set.
local function parse_part(f, part, set)
  local range, step = part, 1
  local slash = part:find("/", 1, true)
  if slash then
    range = part:sub(1, slash - 1)
    local s = part:sub(slash + 1)
    step = s:find("^%d+$") and tointeger(tonumber(s)) or nil
    if step == nil or step < 1 then
      return nil, format("step '%s' is not a positive number", s)
    end
  end
  local a, b
  if range == "*" then
    a, b = f.lo, f.star_hi or f.hi
  else
    local dash = range:find("-", 1, true)
    local err
    a, err = parse_value(f, dash and range:sub(1, dash - 1) or range)
    if a == nil then return nil, err end
    if dash then
      b, err = parse_value(f, range:sub(dash + 1))
      if b == nil then return nil, err end
      if b < a then return nil, format("range '%s' runs backwards", range) end
    elseif slash then
      return nil, format("'%s': a step needs * or a range (*/n, a-b/n)", part)
    else
      b = a
    end
  end
  for v = a, b, step do set[v] = true end
  return true
end

-- prev[x] = the largest value of set at or below x (false: none), lo..hi.
local function prev_table(set, lo, hi)
  local prev, last = {}, false
  for x = lo, hi do
    if set[x] then last = x end
    prev[x] = last
  end
  return prev
end

local Cron = {}
Cron.__index = Cron
Cron.__tostring = function(c) return format("cron %q", c.expr) end

-- Parse expr; returns a matcher, or nil and a message naming the field.
local function cron_parse(expr)
  if type(expr) ~= "string" then
    return nil, format("cron expression must be a string, got %s", type(expr))
  end
  if #expr > EXPR_MAX then
    return nil, format("cron expression longer than %d characters", EXPR_MAX)
  end
  local text = MACROS[expr:match("^%s*(@%a+)%s*$") or ""] or expr
  local words = {}
  for w in text:gmatch("%S+") do words[#words + 1] = w end
  if #words ~= 5 then
    return nil, format("cron %q: expected 5 fields (minute hour day-of-month month day-of-week), got %d",
                       expr, #words)
  end
  local sets = {}
  for i, f in ipairs(FIELDS) do
    local set = {}
    for part in (words[i] .. ","):gmatch("([^,]*),") do
      local ok, err
      if part == "" then
        err = format("empty element in '%s'", words[i])
      else
        ok, err = parse_part(f, part, set)
      end
      if not ok then return nil, format("cron %q: %s: %s", expr, f.name, err) end
    end
    sets[i] = set
  end
  local dow = sets[5]
  if dow[7] then dow[0] = true end
  return setmetatable({
    expr = expr,
    prevm = prev_table(sets[1], 0, 59),
    prevh = prev_table(sets[2], 0, 23),
    dom = sets[3], month = sets[4], dow = dow,
    -- Vixie cron: a day field counts as restricted unless it starts with *;
    -- when both are restricted, either one matching is enough.
    day_or = words[3]:sub(1, 1) ~= "*" and words[5]:sub(1, 1) ~= "*",
  }, Cron)
end

-- Whether the cron allows day z (days since 1970-01-01, local calendar).
function Cron:day_ok(z)
  local _, m, d = civil_from_days(z)
  if not self.month[m] then return false end
  local wd = (z + 4) % 7                          -- 1970-01-01 was a Thursday
  if self.day_or then return self.dom[d] or self.dow[wd] or false end
  return (self.dom[d] and self.dow[wd]) or false
end

-- The latest allowed wall minute in [stop, limit], or nil.
function Cron:prev_wall(limit, stop)
  local z, h, m = limit // DAY_MIN, (limit % DAY_MIN) // 60, limit % 60
  local maxm = self.prevm[59]
  while z * DAY_MIN + DAY_MIN - 1 >= stop do
    if self:day_ok(z) then
      local hh, mm = self.prevh[h], nil
      if hh == h then
        mm = self.prevm[m]
        if not mm then hh = h > 0 and self.prevh[h - 1] end
      end
      if hh then
        local w = z * DAY_MIN + hh * 60 + (mm or maxm)
        if w >= stop then return w end
        return nil
      end
    end
    z, h, m = z - 1, 23, 59
  end
  return nil
end

-- ms as an integer, or an error at the caller of the method.
local function check_ms(ms, what)
  local v = type(ms) == "number" and tointeger(ms // 1) or nil
  if v == nil then
    error(format("sluice.cron: %s must be a number of ms since the epoch, got %s", what, type(ms)), 3)
  end
  return v
end

-- Whether the wall minute of instant ms is one the expression names.
function Cron:matches(ms)
  local w = wall_of(check_ms(ms, "ms"))
  return self:prev_wall(w, w) == w
end

-- The latest instant (ms, the start of its minute) at which the expression
-- fired at or before ms, looking back at most lookback_ms (default 8 days);
-- nil when it did not fire in that span. Second result: its wall minute.
function Cron:last(ms, lookback_ms)
  ms = check_ms(ms, "ms")
  lookback_ms = lookback_ms == nil and LOOKBACK_MS or check_ms(lookback_ms, "lookback_ms")
  if lookback_ms < 0 or lookback_ms > LOOKBACK_MAX_MS then
    error(format("sluice.cron: lookback_ms must be in 0..%d (31 days)", LOOKBACK_MAX_MS), 2)
  end
  local wnow, off = wall_of(ms)
  local wstart = wall_of(ms - lookback_ms)
  -- While the clock repeats an hour, minutes already passed read later than
  -- now on the wall: look that far above it too.
  local _, off_before = wall_of(ms - 6 * 3600000)
  local limit = wnow + (off_before > off and (off_before - off) // 60 or 0)
  local stop = wstart - 180
  while true do
    local w = self:prev_wall(limit, stop)
    if w == nil then return nil end
    local t = instant_of(w, off)
    if t <= ms then
      if t >= ms - lookback_ms then return t, w end
      return nil
    end
    limit = w - 1
  end
end

-- sluice.cron(expr) -> matcher with :matches(ms), :last(ms[, lookback_ms]), .expr
function sluice.cron(expr)
  local c, err = cron_parse(expr)
  if c == nil then error(err, 2) end
  return c
end

-- ---- rules ---------------------------------------------------------------------------

local function now_of(ctx, who)
  local now = type(ctx) == "table" and tointeger(ctx.now)
  if not now then error(format("%s: ctx.now must be an integer (ms since the epoch)", who), 3) end
  return now
end

local function count(v)
  return type(v) == "number" and v or 0
end

-- "09:00 Mon", with the date when it is six days old or more.
local function wall_label(w, wnow)
  local z = w // DAY_MIN
  local label = format("%02d:%02d %s", (w % DAY_MIN) // 60, w % 60, DAY_NAMES[(z + 4) % 7])
  if wnow // DAY_MIN - z >= 6 then
    local _, m, d = civil_from_days(z)
    label = format("%s %d %s", label, d, MONTH_NAMES[m])
  end
  return label
end

local function check_fields(spec, allowed, who, level)
  for k in pairs(spec) do
    if not allowed[k] then
      error(format("%s: unknown field '%s'", who, tostring(k)), level + 1)
    end
  end
end

local function nonneg_int(v)
  v = tointeger(v)
  return v ~= nil and v >= 0 and v or nil
end

-- sluice.schedule{ {cron = "0 9 * * 1-5", desired = 16}, ..., default = N }
-- -> rule: the desired of the entry that fired last at or before ctx.now
-- (within 8 days; a tie goes to the later entry), else default, else nil.
function sluice.schedule(spec)
  local who = "sluice.schedule"
  if type(spec) ~= "table" then
    error(format("%s: expected a table { {cron = \"...\", desired = N}, ..., default = N }", who), 2)
  end
  local n = #spec
  for k in pairs(spec) do
    if k ~= "default" and not (mtype(k) == "integer" and k >= 1 and k <= n) then
      error(format("%s: unknown field '%s'", who, tostring(k)), 2)
    end
  end
  if n == 0 then error(format("%s: needs at least one {cron = ..., desired = N} entry", who), 2) end
  local default = spec.default
  if default ~= nil and nonneg_int(default) == nil then
    error(format("%s: default must be a non-negative integer", who), 2)
  end
  default = nonneg_int(default)
  local entries = {}
  for i = 1, n do
    local e = spec[i]
    local where = format("%s: entry %d", who, i)
    if type(e) ~= "table" then error(format("%s: expected {cron = ..., desired = N}", where), 2) end
    check_fields(e, {cron = true, desired = true}, where, 2)
    local c, err = cron_parse(e.cron)
    if c == nil then error(format("%s: %s", where, err), 2) end
    local d = nonneg_int(e.desired)
    if d == nil then error(format("%s: desired must be a non-negative integer", where), 2) end
    entries[i] = {cron = c, desired = d}
  end
  return function(q, ctx)
    local now = now_of(ctx, who)
    local best, best_t, best_w
    for i = 1, #entries do
      local t, w = entries[i].cron:last(now)
      if t and (best_t == nil or t >= best_t) then best, best_t, best_w = entries[i], t, w end
    end
    if best == nil then
      if default then return default, format("schedule default %d (no entry fired in the last 8 days)", default) end
      return nil, "schedule: no entry fired in the last 8 days"
    end
    return best.desired, format("schedule %q (since %s)", best.cron.expr, wall_label(best_w, wall_of(now)))
  end
end

local function show(x)
  return mtype(x) == "float" and format("%g", x) or tostring(x)
end

-- sluice.backlog_target{ per_slot = N, min = ?, max = ? } -> rule:
-- ceil((q.waiting + q.active) / per_slot) within [min or q.min, max or q.max].
function sluice.backlog_target(spec)
  local who = "sluice.backlog_target"
  if type(spec) ~= "table" then error(format("%s: expected a table { per_slot = N, min = ?, max = ? }", who), 2) end
  check_fields(spec, {per_slot = true, min = true, max = true}, who, 2)
  local per_slot = spec.per_slot
  if type(per_slot) ~= "number" or not (per_slot > 0 and per_slot < huge) then
    error(format("%s: per_slot must be a number above 0", who), 2)
  end
  local lo, hi = nonneg_int(spec.min), nonneg_int(spec.max)
  if spec.min ~= nil and lo == nil then error(format("%s: min must be a non-negative integer", who), 2) end
  if spec.max ~= nil and hi == nil then error(format("%s: max must be a non-negative integer", who), 2) end
  if lo and hi and lo > hi then error(format("%s: min %d is above max %d", who, lo, hi), 2) end
  return function(q, ctx)
    if type(q) ~= "table" then error(format("%s: q must be a table", who), 2) end
    local total = count(q.waiting) + count(q.active)
    local want
    if mtype(total) == "integer" and mtype(per_slot) == "integer" then
      want = (total + per_slot - 1) // per_slot
    else
      want = tointeger(ceil(total / per_slot)) or 0
    end
    if want < 0 then want = 0 end
    local low = lo or nonneg_int(q.min) or 0
    local high = hi or nonneg_int(q.max)
    local out, why = want, nil
    if high and out > high then out, why = high, "max" end
    if out < low then out, why = low, "min" end
    local reason = format("%s waiting+active, %s per slot -> %d", show(total), show(per_slot), want)
    if why then reason = format("%s, clamped to %s %d", reason, why, out) end
    return out, reason
  end
end
