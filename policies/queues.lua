-- queues.lua — how many jobs each worker of a queue may run at once, and
-- what changes Sluice accepts. sluiced reloads this directory within a
-- second or two of a save; if a file fails to load, the previous policy
-- stays in force and the error shows at /api/v1/policies and in the log.
-- Check an edit before saving it into production:
--
--     build/sluiced policy check policies/
--
-- Every *.lua file here is loaded in name order into one policy.

-- defaults { ... } applies to every queue below unless the queue says
-- otherwise. default/min/max are required (here or per queue).
defaults {
  default = 4,             -- concurrency of a queue nobody has changed yet
  min = 1,                 -- never scale below this ...
  max = 32,                -- ... or above this
  max_step = 8,            -- largest change in one update (no 1 -> 32 jumps)
  cooldown_s = 10,         -- seconds between two applied changes of a queue
  changes_per_hour = 60,   -- budget of applied changes per queue per hour
  confirm_above = 24,      -- values above this need "confirm": true
  layout = "sluice",       -- where queue depth is read: "sluice" | "bullmq"
}

-- One line per queue; only what differs from the defaults.
queue "ingestion" { max = 64, max_step = 16, confirm_above = 48 }
queue "build"     { max = 16, confirm_above = 12 }
queue "workflow"  { min = 0, default = 2 }

-- An autoscaling rule, in dry run: it proposes (the card's Autoscaler block,
-- `sluicectl autoscalers`) and changes nothing until dry_run goes.
-- docs/autoscaling.md tells the rest.
autoscale "ingestion" {
  every_s = 15,
  dry_run = true,
  rule = sluice.backlog_target{ per_slot = 50 },
}

-- validate(change, ctx) runs after the built-in checks pass. Return true to
-- accept, or false and a message to refuse (the API answers 422
-- policy_rejected with your message). It must be quick: a call that runs
-- too long is cut off and the change is refused.
--   change: queue, from, to, actor, scopes, source, reason, confirm
--   ctx:    environment, now (seconds), recent_changes (last hour)
function validate(change, ctx)
  if ctx.environment == "production" and change.to == 0 and not change.confirm then
    return false, "stopping a production queue needs confirmation"
  end
  return true
end
