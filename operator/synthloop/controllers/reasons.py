"""Condition reasons: one module, so `kubectl get -o yaml`, tests and docs agree on the words.

Reasons are CamelCase (Kubernetes convention); messages carry the details.
"""

from __future__ import annotations

# InputsReady
RESOLVED = "Resolved"
WAITING_FOR_PRODUCER = "WaitingForProducer"
WAITING_FOR_PROMOTION = "WaitingForPromotion"
WAITING_FOR_ARTIFACT = "WaitingForArtifact"
PROMOTION_NOT_SHARED = "PromotionNotShared"  # promoted: <ns>/<name> that <ns> does not share with us

# Running
JOB_CREATED = "JobCreated"
JOB_RUNNING = "JobRunning"
JOB_SUSPENDED = "JobSuspended"  # queued in Kueue, waiting for admission
STAGES_COMPLETE = "StagesComplete"
ATTEMPT_STARTED = "AttemptStarted"  # a gang stage's next attempt, resuming from a checkpoint
ATTEMPT_FAILED = "AttemptFailed"  # Event: one attempt of a gang stage failed
POD_FAILED = "PodFailed"  # Event: a worker pod failed, with its termination message
NOT_STARTED = "NotStarted"

# Evaluated
EVALUATING = "Evaluating"
EVALUATED = "Evaluated"
NO_EVALUATION = "NoEvaluation"

# Promoted
GATES_PASSED = "GatesPassed"
GATE_FAILED = "GateFailed"
NO_PROMOTION = "NoPromotion"
PROMOTION_HELD = "PromotionHeld"  # the name is promoted by another run, which this one may not replace

# Failed
INVALID_SPEC = "InvalidSpec"
REF_NOT_FOUND = "RefNotFound"
REF_CYCLE = "RefCycle"
SECRET_MISSING = "SecretMissing"
PROFILE_MISSING = "ProfileMissing"
JOB_FAILED = "JobFailed"
INVALID_INPUT = "InvalidInput"  # a worker exited with EXIT_INVALID_INPUT: retrying cannot help
MANIFEST_INVALID = "ManifestInvalid"  # a Job succeeded but its manifest is missing or does not verify
NO_FAILURE = "NoFailure"
RETRY_REQUESTED = "RetryRequested"  # synthloop.io/retry set to a new value on a Failed run

ALL = tuple(v for k, v in dict(globals()).items() if k.isupper() and isinstance(v, str))
