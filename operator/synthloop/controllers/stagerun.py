"""Step 3 of a pass, run stages: each stage is done when its manifests verify, else its Job is
created, watched, retried as a new gang attempt, or the run fails with the worker's reason.

Verification is by metadata only (HEAD): a stage's manifests are fetched once per version
(``Reconciler.verified``) and their outputs HEAD-checked; no output is ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from synthloop.api.v1alpha1.common import Output
from synthloop.artifacts.manifest import MANIFEST_NAME, Manifest, ManifestError
from synthloop.artifacts.store import ArtifactNotFound
from synthloop.artifacts.uris import join
from synthloop.builders.jobs import Platform, build_job, build_service
from synthloop.builders.names import attempt_job_name
from synthloop.builders.stages import StagePlan, job_request
from synthloop.controllers import attempts as gang
from synthloop.controllers import kueue
from synthloop.controllers import metrics as telemetry
from synthloop.controllers import reasons as R
from synthloop.controllers.admit import Admitted, require_secret
from synthloop.controllers.runstate import Outcome, RunState, Stop
from synthloop.controllers.status import (
    PodFailure,
    attempts,
    failure_reason,
    gpu_hours,
    job_state,
    pod_failures,
)

MANIFEST_OUTPUT = "manifest:"


def _digest_of(digests: list[bytes]) -> str:
    """One sha256 over several (the sha256 digests of a stage's manifests, in order)."""
    h = hashlib.sha256()
    for d in digests:
        h.update(d)
    return h.hexdigest()


def observe_jobs(run: RunState, adm: Admitted) -> None:
    """The run's Jobs, and what they cost so far (pods started, GPU-hours)."""
    run.jobs = {j["metadata"]["name"]: j for j in run.cluster.list_jobs(run.namespace, run.uid)}
    run.status.attempts = attempts(run.jobs.values())
    run.status.gpu_hours = gpu_hours(run.jobs.values(), now=run.now, gpu_resource=adm.profile.gpu_resource)


def run_stages(run: RunState, adm: Admitted, plans: list[StagePlan]) -> dict[str, list[Manifest]]:
    """Every stage's manifests once all are done; otherwise act on the first unfinished one and stop."""
    manifests = {plan.stage: advance(run, adm, plan, evaluating=False) for plan in plans}
    run.cond("Running", False, R.STAGES_COMPLETE, f"{len(plans)} stage(s) complete")
    run.status.progress = None
    return manifests


def _verify(run: RunState, plan: StagePlan) -> tuple[list[Manifest], str | None, int]:
    """Manifests of a stage if all verify (else an error), and how many exist. The digest of a
    stage's manifests is kept in ``status.outputs`` as ``manifest:<stage>``."""
    manifests: list[Manifest] = []
    digests: list[bytes] = []
    error: str | None = None
    for prefix in plan.manifests:
        uri = join(prefix, MANIFEST_NAME)
        try:
            manifest, digest = run.rec.verified(uri)
        except ArtifactNotFound:
            error = error or f"{uri} does not exist"
            continue
        except (ManifestError, ValueError) as exc:
            error = error or str(exc)
            continue
        manifests.append(manifest)
        digests.append(digest)
        run.expected.update({o.uri: o.sha256 for o in manifest.outputs if o.sha256})
    if error:
        return [], error, len(manifests)
    run.verified_outputs.append(Output(name=MANIFEST_OUTPUT + plan.stage, uri=join(plan.manifests[0], MANIFEST_NAME),
                                       sha256=_digest_of(digests), size=len(manifests)))
    return manifests, None, len(manifests)


def _progress(run: RunState, adm: Admitted, plan: StagePlan, manifests_present: int) -> str:
    reports: list[dict[str, Any]] = []
    try:
        for uri in run.store.list(join(plan.output, "progress") + "/"):
            if uri.rsplit("/", 1)[-1].startswith(f"{plan.task}-"):
                reports.append(run.store.get_json(uri))
    except (ArtifactNotFound, ValueError):
        reports = []
    return adm.plugin.progress(plan, reports, manifests_present)


def advance(run: RunState, adm: Admitted, plan: StagePlan, *, evaluating: bool) -> list[Manifest]:
    """Return the stage's manifests when it is done; otherwise act and stop the pass."""
    manifests, error, present = _verify(run, plan)
    if error is None:
        return manifests
    st = run.status
    attempt, name = gang.current_attempt(run.jobs, run.name, plan.stage)
    job = run.jobs.get(name)
    state = job_state(job)
    st.stage = plan.stage
    if plan.rendezvous:  # a gang stage: which attempt, and (from the 2nd) its resume step
        st.stage_attempt = attempt
        if attempt == 1:
            st.resumed_from_step = None
    st.phase = "Evaluating" if evaluating else "Running"
    if state == "missing":
        _create(run, adm, plan, name)
        if not st.started_at:
            st.started_at = run.now_s
        run.cond("Running", True, R.JOB_CREATED, f"stage {plan.stage}: created Job {name}")
        st.progress = adm.plugin.initial_progress(plan)
        run.event("Normal", R.JOB_CREATED, f"stage {plan.stage}: created Job {name} ({plan.pods} pod(s))")
        raise Stop(Outcome("running", f"created Job {name}"))
    assert job is not None
    if state == "failed":
        raise _failed(run, adm, plan, job, attempt)
    if state == "complete":
        # A pod that "succeeded" without writing its manifest never really ran (a KWOK
        # node), or crashed after exit 0: either way its output cannot be trusted.
        raise run.fail(R.MANIFEST_INVALID,
                       f"stage {plan.stage}: Job {name} completed but its output does not verify: {error}")
    if state == "suspended":
        queue = adm.spec.resources.queue or "?"
        run.cond("Running", False, R.JOB_SUSPENDED,
                 kueue.queued_message(run.cluster, job, stage=plan.stage, queue=queue))
        st.phase = "Pending"
        st.progress = "queued"
        raise Stop(Outcome("running", "suspended"))
    st.progress = _progress(run, adm, plan, present)
    if int((job.get("status") or {}).get("failed") or 0):
        _pod_failures(run, plan, job)  # a Warning per failed pod, also while its Job retries
    admitted = kueue.admission_note(run.cluster, job)
    run.cond("Running", True, R.JOB_RUNNING, f"stage {plan.stage}: Job {name} running ({st.progress})"
             + (f"; {admitted}" if admitted else ""))
    raise Stop(Outcome("running", f"Job {name} running"))


def _pod_failures(run: RunState, plan: StagePlan, job: dict[str, Any]) -> list[PodFailure]:
    """The Job's failed pods, each posted once as a Warning Event with its reason."""
    name = job["metadata"]["name"]
    failures = pod_failures(run.cluster.list_pods(run.namespace, name))
    for f in failures:
        run.event("Warning", R.POD_FAILED, f"stage {plan.stage}: Job {name}: {f.describe()}"
                  + (f": {f.message}" if f.message else ""), name=f"{run.name}.{f.uid or f.pod}")
    return failures


def _failed(run: RunState, adm: Admitted, plan: StagePlan, job: dict[str, Any], attempt: int) -> Stop:
    """A failed Job: the next gang attempt (resuming from the last checkpoint), or the CR fails
    with the worker's own reason."""
    spec = adm.spec
    failures = _pod_failures(run, plan, job)
    reason = failure_reason(job, failures)
    invalid = gang.invalid_input(failures)
    if run.retrying or (plan.rendezvous and not invalid and gang.may_retry(
            attempt, backoff_limit=spec.backoff_limit, was_disrupted=gang.disrupted(failures, job))):
        nxt = attempt + 1
        name = attempt_job_name(run.name, plan.stage, nxt)
        resume_uri, step = gang.resume_point(run.store, plan.output, plan.task)
        _create(run, adm, plan, name, resume_from=resume_uri)
        run.status.stage_attempt, run.status.resumed_from_step = nxt, step
        run.status.progress = f"attempt {nxt}, resuming at step {step}"
        run.event("Warning", R.ATTEMPT_FAILED, f"stage {plan.stage}: attempt {attempt} failed: {reason}",
                  name=f"{job['metadata']['name']}.failed")
        message = (f"stage {plan.stage}: attempt {nxt} of at most {spec.backoff_limit + 1} (Job {name}) "
                   f"resumes from step {step}" + (f" ({resume_uri})" if resume_uri else " (no checkpoint yet)"))
        run.cond("Running", True, R.ATTEMPT_STARTED, message)
        run.event("Normal", R.ATTEMPT_STARTED, message, name=f"{name}.started")
        return Stop(Outcome("running", message))
    return run.fail(R.INVALID_INPUT if invalid else R.JOB_FAILED, f"stage {plan.stage}: {reason}")


def spec_hash(run: RunState) -> str:
    raw = json.dumps(run.body.get("spec") or {}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _create(run: RunState, adm: Admitted, plan: StagePlan, name: str, resume_from: str | None = None) -> None:
    require_secret(run)  # again, now that pods will read it
    spec = adm.spec
    image = spec.resources.image or run.config.image_for(run.kind)
    platform = Platform(image=image, s3_endpoint=run.config.s3_endpoint, s3_secret=run.config.s3_secret,
                        s3_secure=run.config.s3_secure, image_pull_policy=run.config.image_pull_policy)
    req = job_request(plan, owner=run.owner, job_name=name, spec_hash=spec_hash(run), image=image,
                      backoff_limit=spec.backoff_limit, resources=spec.resources, resume_from=resume_from,
                      pod_template=adm.plugin.pod_template(spec))
    ins = list(req.config.inputs.values())
    req.config.checksums = {uri: sha for uri, sha in sorted(run.expected.items())
                            if any(uri == i or (i.endswith("/") and uri.startswith(i)) for i in ins)}
    if req.rendezvous:
        run.cluster.apply(build_service(run.owner, req))
    run.cluster.apply(build_job(run.owner, platform, adm.profile, req,
                                pod_annotations=kueue.topology_annotations(run.body)))
    telemetry.JOBS_CREATED.labels(run.kind, plan.stage).inc()


def record_outputs(run: RunState, adm: Admitted, plans: list[StagePlan], manifests: dict[str, list[Manifest]]) -> None:
    """``status.outputs`` and ``status.counts`` (and a data set's metrics) from the last stage, as its kind reads them."""
    last = plans[-1]
    out = adm.plugin.outputs(last, manifests[last.stage])
    if out.metrics is not None:
        run.status.metrics = out.metrics
    run.status.outputs = out.outputs + run.verified_outputs
    run.status.counts = out.counts
