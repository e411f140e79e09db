"""The Kubernetes example validates against the Kubernetes schema (offline), and its shards fit
batcher: N said the same everywhere, a ledger per shard, the token from a Secret; every pod runs
the image deploy/build-image.sh builds, as its user on a read-only root (tests/test_image.py runs
that image so)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from batcher.app.sharding import resolve_shard

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "kubernetes"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
MANIFESTS = sorted(DEPLOY.glob("*.yaml"))
# The schemas kubernetes-validate ships (no network); strict: unknown fields are errors.
VERSION = kubernetes_validate.latest_version()


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def job_specs() -> list[tuple[str, dict[str, Any]]]:
    """Every Job spec in the example, a CronJob's included."""
    specs = []
    for path in MANIFESTS:
        for doc in documents(path):
            if doc["kind"] == "Job":
                specs.append((doc["metadata"]["name"], doc["spec"]))
            elif doc["kind"] == "CronJob":
                specs.append((doc["metadata"]["name"], doc["spec"]["jobTemplate"]["spec"]))
    return specs


def test_the_example_has_the_job_the_merge_the_cronjob_and_the_volume() -> None:
    assert {p.name for p in MANIFESTS} >= {"job.yaml", "merge-job.yaml", "cronjob.yaml", "pvc.yaml"}
    assert (DEPLOY / "README.md").is_file()


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_each_manifest_validates_against_the_kubernetes_schema(path: Path) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, VERSION, strict=True)


def test_the_validator_does_catch_a_wrong_field() -> None:
    """The check above has teeth: an unknown field in a Job fails it."""
    [doc] = documents(DEPLOY / "job.yaml")
    doc["spec"]["template"]["spec"]["containers"][0]["shards"] = 4
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, VERSION, strict=True)


def _container(spec: dict[str, Any]) -> dict[str, Any]:
    [container] = spec["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


@pytest.mark.parametrize(
    ("name", "spec"), [s for s in job_specs() if s[1].get("completionMode") == "Indexed"]
)
def test_an_indexed_job_runs_one_shard_per_index_with_its_own_ledger(
    name: str, spec: dict[str, Any]
) -> None:
    container = _container(spec)
    args = container["args"]
    shards = int(_option(args, "--shards"))
    assert spec["completions"] == spec["parallelism"] == shards
    assert args[0] == "run"
    env = _env(container)
    # The index is declared before the variables that use it (the controller appends its own).
    names = list(env)
    assert names.index("JOB_COMPLETION_INDEX") < names.index("BATCHER_STATE_DIR")
    assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    assert env["BATCHER_STATE_DIR"]["value"].endswith("$(JOB_COMPLETION_INDEX)")
    assert "$(JOB_COMPLETION_INDEX)" in _option(args, "--report")
    assert env["BATCHER_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "batcher-token"
    assert "--yes" in args
    # A failed pod is retried (it resumes its shard); exit 2 (usage) fails the Job at once.
    assert spec["backoffLimit"] > 0
    [rule] = spec["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"]["values"] == [2]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    # What the pods will do with their index: each takes a shard of the count they are given.
    for index in range(shards):
        shard, _ = resolve_shard(None, str(shards), {"JOB_COMPLETION_INDEX": str(index)})
        assert shard is not None
        assert shard.index == index


def test_the_merge_reads_one_report_per_shard_of_the_job() -> None:
    [job] = documents(DEPLOY / "job.yaml")
    [merge] = documents(DEPLOY / "merge-job.yaml")
    shards = job["spec"]["completions"]
    report = _option(_container(job["spec"])["args"], "--report")
    args = _container(merge["spec"])["args"]
    expected = [report.replace("$(JOB_COMPLETION_INDEX)", str(k)) for k in range(shards)]
    assert args[0] == "merge"
    assert args[1 : 1 + shards] == expected
    assert int(_option(args, "--shards")) == shards
    assert merge["spec"]["backoffLimit"] == 0  # a retry cannot make a missing shard appear


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    """Every pod the example makes: the Jobs' and CronJobs' templates, and the files pod."""
    specs = [(name, spec["template"]["spec"]) for name, spec in job_specs()]
    for path in MANIFESTS:
        specs += [
            (doc["metadata"]["name"], doc["spec"])
            for doc in documents(path)
            if doc["kind"] == "Pod"
        ]
    return specs


def test_everything_shares_one_volume_claim() -> None:
    [pvc] = documents(DEPLOY / "pvc.yaml")
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    assert {name for name, _ in pod_specs()} >= {"batcher-shards", "batcher-merge", "batcher-files"}
    for _, spec in pod_specs():
        [claim] = [v for v in spec["volumes"] if "persistentVolumeClaim" in v]
        assert claim["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


@pytest.mark.parametrize("spec", [s for _, s in pod_specs()], ids=[n for n, _ in pod_specs()])
def test_each_pod_runs_the_built_image_as_its_user_on_a_read_only_root(
    spec: dict[str, Any],
) -> None:
    """Each pod runs the image deploy/build-image.sh tags (batcher:VERSION) as its user 10001,
    the root filesystem read-only, /data the shared volume and /tmp an emptyDir, and the volume's
    ownership set only when new (a recursive change at each start would open the state
    directories to the group)."""
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == pod["runAsGroup"] == pod["fsGroup"] == 10001
    assert pod["fsGroupChangePolicy"] == "OnRootMismatch"
    volumes = {v["name"]: v for v in spec["volumes"]}
    [container] = spec["containers"]
    assert container["image"] == f"batcher:{PROJECT['version']}"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    assert "persistentVolumeClaim" in mounts["/data"]
    assert "emptyDir" in mounts["/tmp"]
