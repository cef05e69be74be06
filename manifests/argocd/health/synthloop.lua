-- Argo CD health check for every synthloop.io kind (PretrainJob, SynthRound, RewardTrain,
-- AlignJob): one script, registered under each kind's key in manifests/argocd/argocd-cm-health.yaml
-- (generated from this file by render_health_cm.py).
-- Status contract: status.phase in Pending, WaitingForInputs, Running, Evaluating, Succeeded,
-- Promoted, Rejected, Failed; status.conditions[] of type InputsReady, Running, Evaluated,
-- Promoted, Failed with status "True"/"False"/"Unknown", reason and message.
local KIND = obj.kind or "synthloop resource"
local hs = {}

local function find(conditions, ctype)
  if type(conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(conditions) do
    if type(c) == "table" and c.type == ctype then
      return c
    end
  end
  return nil
end

local function text(value, fallback)
  if type(value) == "string" and value ~= "" then
    return value
  end
  return fallback
end

local status = obj.status
local phase = nil
local conditions = nil
if type(status) == "table" then
  phase = status.phase
  conditions = status.conditions
end

-- No status yet, or only kopf's own bookkeeping under status: the operator has not acted.
if type(status) ~= "table" or (phase == nil and (type(conditions) ~= "table" or #conditions == 0)) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end

-- A spec edit the operator has not seen yet: whatever the status says is about the old spec.
local generation = nil
if type(obj.metadata) == "table" then
  generation = obj.metadata.generation
end
local observed = status.observedGeneration
if type(observed) == "number" and observed > 0 and type(generation) == "number"
    and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local failed = find(conditions, "Failed")
if phase == "Failed" or (failed ~= nil and failed.status == "True") then
  hs.status = "Degraded"
  hs.message = text(failed and failed.message, KIND .. " failed")
  return hs
end

local promoted = find(conditions, "Promoted")
if phase == "Rejected" or (promoted ~= nil and promoted.status == "False"
    and promoted.reason == "GateFailed") then
  hs.status = "Degraded"
  hs.message = text(promoted and promoted.message, KIND .. " was rejected by its evaluation gates")
  return hs
end

if phase == "Promoted" or (promoted ~= nil and promoted.status == "True") then
  hs.status = "Healthy"
  hs.message = text(promoted and promoted.message, KIND .. " promoted")
  return hs
end

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = KIND .. " succeeded"
  return hs
end

-- Held by an outside decision: Kueue has not admitted (or has preempted) the run's Job. Argo CD
-- shows work it does not control that way as Suspended, as it does for a suspended Job.
local running = find(conditions, "Running")
if running ~= nil and running.status == "False" and running.reason == "JobSuspended" then
  hs.status = "Suspended"
  hs.message = text(running.message, KIND .. " is queued")
  if type(status.progress) == "string" and status.progress ~= "" then
    hs.message = hs.message .. " (" .. status.progress .. ")"
  end
  return hs
end

-- Everything else is on its way: say what it waits for or what it is doing.
local message = nil
local inputs = find(conditions, "InputsReady")
if inputs ~= nil and inputs.status == "False" then
  message = text(inputs.message, nil)
end
if message == nil then
  message = text(running and running.message, nil)
end
message = text(message, text(phase, "Waiting for the operator"))
if type(status.progress) == "string" and status.progress ~= "" then
  message = message .. " (" .. status.progress .. ")"
end
hs.status = "Progressing"
hs.message = message
return hs
