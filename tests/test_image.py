"""The container image (deploy/Containerfile, built by deploy/build-image.sh) builds here and runs
batcher as its non-root user with the root filesystem read-only.

No registry is reachable here, so the base is made from Debian's packages (mmdebstrap: python3,
python3-venv) and committed with buildah as `localhost/debian-python`, then passed as `BASE`.
The image is run by runc (containerd's default OCI runtime) from an OCI runtime config made of
the image's own (entrypoint, user, environment, working directory, volume) with `root.readonly`
set, which is what Kubernetes' `readOnlyRootFilesystem` and `docker run --read-only` ask of the
runtime: the volume is a folder bound at /data, /tmp a tmpfs (an emptyDir in the manifests), no
capabilities. Unlike Kubernetes it shares the host's network (the embedded sandbox listens on
loopback) and no kubelet sets the volume's ownership (its folder is given the group and mode a
pod's fsGroup gives it).

Slow (on the 2-core machine: 1.5 minutes when it was otherwise idle, the Debian base made
included; 3.3 to 5 minutes while other test runs shared it, the base cached or not; most of it
the build in buildah's vfs storage): marked `slow`, left out of `python -m pytest`
and run by `.ci/run`. It needs root (buildah's vfs storage and runc as root) and Debian's
buildah, mmdebstrap and runc; without them it skips, saying which.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
TOOLS = ("buildah", "mmdebstrap", "runc")
# The Debian base, kept between runs (it takes half a minute and 180 MB of downloads), under a
# name made of everything that goes into it.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "batcher-image"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
# As Debian's slim images: no manuals, documentation (copyrights aside) or translations.
DPKG_OPTIONS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
)
# Certificate authorities this host's administrator added (a TLS-inspecting proxy's): pip in the
# build reaches PyPI through whatever this host reaches it through. Debian's pip uses the system's
# certificates.
LOCAL_CAS = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
BASE = "localhost/debian-python"
BOUND_S = 900  # a bound on each step, so that a hang fails the test; nothing is timed

# The same data a pod's fsGroup gives a volume's root: the pod's group, group-writable, setgid.
FS_GROUP = 10001
VOLUME_MODE = 0o2775


def missing() -> str | None:
    """Why the image cannot be built and run here, or None."""
    if os.geteuid() != 0:
        return "needs root (buildah's vfs storage and runc run as root here)"
    absent = [tool for tool in TOOLS if shutil.which(tool) is None]
    if absent:
        return f"needs {', '.join(absent)} (apt-get install {' '.join(TOOLS)})"
    return None


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`argv` run to its end; a failure shows its output."""
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=BOUND_S, stdin=subprocess.DEVNULL, **kwargs
    )
    if done.returncode != 0:
        pytest.fail(f"{argv[0]} {argv[1]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def debian_base() -> Path:
    """A tarball of a Debian root with Python (cached; made with mmdebstrap when missing)."""
    recipe = hashlib.sha256(
        json.dumps([SUITE, MIRROR, PACKAGES, DPKG_OPTIONS]).encode()
        + b"".join(path.read_bytes() for path in LOCAL_CAS)
    ).hexdigest()[:16]
    tarball = CACHE / f"debian-python-{recipe}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob("debian-python-*.tar"):
        old.unlink(missing_ok=True)  # another recipe's
    partial = tarball.with_suffix(f".{os.getpid()}.partial")  # two runs at once each make one
    argv = ["mmdebstrap", "--variant=minbase", "--format=tar", f"--include={','.join(PACKAGES)}"]
    argv += [f"--dpkgopt={option}" for option in DPKG_OPTIONS]
    if LOCAL_CAS:
        argv.append(
            f"--customize-hook=copy-in {' '.join(map(str, LOCAL_CAS))} "
            "/usr/local/share/ca-certificates"
        )
        argv.append('--customize-hook=chroot "$1" update-ca-certificates')
    try:
        run([*argv, SUITE, str(partial), MIRROR])
        partial.rename(tarball)
    finally:
        partial.unlink(missing_ok=True)
    return tarball


@dataclass(frozen=True)
class Image:
    name: str
    config: dict[str, Any]  # the image's OCI config ("config" of its configuration)
    rootfs: Path  # the image's files (a buildah working container's, never written to)
    build_output: str
    state: Path  # runc's state folder
    bundles: Path


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """The image built by deploy/build-image.sh on the Debian base, in a storage of its own."""
    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("image")
    storage = work / "storage"
    conf = work / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{storage}"\nrunroot = "{work / "run"}"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf), "BUILDAH_ISOLATION": "chroot"}
    try:
        tarball = debian_base()
        container = run(["buildah", "from", "scratch"], env=env).stdout.strip()
        mount = Path(run(["buildah", "mount", container], env=env).stdout.strip())
        run(["tar", "--numeric-owner", "-xpf", str(tarball), "-C", str(mount)])
        run(["buildah", "config", "--env", "LANG=C.UTF-8", container], env=env)
        run(["buildah", "commit", "--rm", "--quiet", container, BASE], env=env)

        built = run([str(ROOT / "deploy" / "build-image.sh"), "--base", BASE], env=env)
        name = f"batcher:{PROJECT['version']}"
        inspected = json.loads(run(["buildah", "inspect", "--type", "image", name], env=env).stdout)
        container = run(["buildah", "from", name], env=env).stdout.strip()
        rootfs = Path(run(["buildah", "mount", container], env=env).stdout.strip())
        (work / "bundles").mkdir()
        yield Image(
            name=name,
            config=inspected["OCIv1"]["config"],
            rootfs=rootfs,
            build_output=built.stdout + built.stderr,
            state=work / "runc",
            bundles=work / "bundles",
        )
    finally:
        state = ["runc", "--root", str(work / "runc")]
        left = subprocess.run([*state, "list", "-q"], capture_output=True, text=True, check=False)
        for name in left.stdout.split():  # a run that timed out
            subprocess.run([*state, "delete", "--force", name], capture_output=True, check=False)
        subprocess.run(["buildah", "rm", "--all"], env=env, capture_output=True, check=False)
        subprocess.run(
            ["buildah", "rmi", "--all", "--force"], env=env, capture_output=True, check=False
        )
        shutil.rmtree(work, ignore_errors=True)


def passwd_home(rootfs: Path, uid: int) -> str:
    """The home directory of `uid` in the image's /etc/passwd ("/" if it has none)."""
    for line in (rootfs / "etc" / "passwd").read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if int(fields[2]) == uid:
            return fields[5]
    return "/"


def start(
    image: Image,
    args: list[str],
    volume: Path,
    *,
    entrypoint: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`args` run in the image by runc as a runtime would run it, the root filesystem read-only.

    The image's entrypoint (or `entrypoint`), user, environment and working directory; `volume`
    bound at the image's volume /data, a tmpfs at /tmp; no capabilities, no new privileges.
    """
    config = image.config
    uid, gid = (int(part) for part in config["User"].split(":"))
    bundle = Path(tempfile.mkdtemp(prefix="batcher-", dir=image.bundles))
    run(["runc", "spec", "--bundle", str(bundle)])
    spec = json.loads((bundle / "config.json").read_text(encoding="utf-8"))
    env = list(config.get("Env", []))
    if not any(item.startswith("HOME=") for item in env):  # as containerd and CRI-O set it
        env.append(f"HOME={passwd_home(image.rootfs, uid)}")
    spec["root"] = {"path": str(image.rootfs), "readonly": True}
    spec["process"].update(
        terminal=False,
        user={"uid": uid, "gid": gid},
        args=[*(entrypoint if entrypoint is not None else config["Entrypoint"]), *args],
        env=env,
        cwd=config["WorkingDir"],
        noNewPrivileges=True,
        capabilities={key: [] for key in spec["process"]["capabilities"]},
    )
    [volume_path] = config["Volumes"]
    spec["mounts"] += [
        {
            "destination": volume_path,
            "type": "bind",
            "source": str(volume),
            "options": ["rbind", "rw", "nosuid", "nodev"],
        },
        {
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777"],
        },
    ]
    spec["linux"]["namespaces"] = [
        ns for ns in spec["linux"]["namespaces"] if ns["type"] != "network"
    ]
    (bundle / "config.json").write_text(json.dumps(spec), encoding="utf-8")
    return subprocess.run(
        ["runc", "--root", str(image.state), "run", "--bundle", str(bundle), bundle.name],
        capture_output=True,
        text=True,
        timeout=BOUND_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def fresh_volume(tmp_path: Path) -> Path:
    volume = tmp_path / "volume"
    volume.mkdir()
    os.chown(volume, 0, FS_GROUP)
    volume.chmod(VOLUME_MODE)
    return volume


def test_the_image_is_labelled_and_runs_batcher_as_a_numeric_non_root_user(image: Image) -> None:
    """Labels name the source, pyproject's version and description and the licence; the user is
    numeric (runAsNonRoot can check it) and not root; batcher is the entry point; /data the
    volume and working directory, the state directory on it."""
    labels = image.config["Labels"]
    assert labels["org.opencontainers.image.version"] == PROJECT["version"]
    assert labels["org.opencontainers.image.description"] == PROJECT["description"]
    licence = PROJECT["license"]  # {text = "MIT"}, or "MIT" (an SPDX expression)
    expected = licence if isinstance(licence, str) else licence["text"]
    assert labels["org.opencontainers.image.licenses"] == expected == "MIT"
    assert labels["org.opencontainers.image.title"] == "batcher"
    assert "org.opencontainers.image.source" in labels
    assert re.fullmatch(r"[0-9a-f]{40}", labels["org.opencontainers.image.revision"])
    assert image.config["User"] == "10001:10001"
    assert image.config["Entrypoint"] == ["batcher"]
    assert list(image.config["Volumes"]) == ["/data"]
    assert image.config["WorkingDir"] == "/data"
    assert "BATCHER_STATE_DIR=/data/state" in image.config["Env"]
    assert "PYTHONDONTWRITEBYTECODE=1" in image.config["Env"]
    assert f"built {image.name} with buildah" in image.build_output


def test_the_image_holds_the_installed_wheel_and_nothing_that_built_it(image: Image) -> None:
    """batcher's environment is there without pip; no sources, wheels, build environment,
    pip cache or compiler is left."""
    venv = image.rootfs / "opt" / "batcher"
    [site] = venv.glob("lib/python3.*/site-packages")
    assert (venv / "bin" / "batcher").is_file()
    assert list(site.glob("batcher-*.dist-info")) != []
    assert {p.suffix for p in (site / "batcher" / "web" / "static").iterdir()} >= {".css", ".js"}
    assert not (site / "batcher" / "tests").exists()
    assert list(site.glob("pip*")) == []
    assert list(site.glob("setuptools*")) == []
    for leftover in ("src", "wheels", "opt/build", "root/.cache/pip", "usr/bin/gcc", "usr/bin/cc"):
        assert not (image.rootfs / leftover).exists(), leftover


def test_batcher_version_runs_in_the_image(image: Image, tmp_path: Path) -> None:
    """`batcher --version` in the image, as its user on a read-only root, prints pyproject's
    version."""
    done = start(image, ["--version"], fresh_volume(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"batcher, version {PROJECT['version']}"


def test_the_root_filesystem_is_read_only_and_the_volume_and_tmp_are_not(
    image: Image, tmp_path: Path
) -> None:
    """The run's user is 10001; writing to the image's files fails, even where the image lets
    anyone write (/var/tmp); writing to /data and /tmp works."""
    volume = fresh_volume(tmp_path)
    script = (
        "id -u; touch /opt/batcher/x 2>&1; touch /var/tmp/x 2>&1; touch /tmp/x && echo tmp ok; "
        "touch /data/x && echo data ok"
    )
    done = start(image, ["-c", script], volume, entrypoint=["/bin/sh"])
    lines = done.stdout.splitlines()
    assert lines[0] == "10001"
    assert "Read-only file system" in lines[1]
    assert "Read-only file system" in lines[2]
    assert lines[3:] == ["tmp ok", "data ok"]
    assert (volume / "x").stat().st_uid == 10001


def test_the_sandbox_demo_runs_in_the_image_as_it_does_here(image: Image, tmp_path: Path) -> None:
    """The README's demo on the samples copied into the volume: the same exit status and report
    as batcher's here, the report and the state directory on the volume, the state directory
    owner-only and trusted (no warning)."""
    volume = fresh_volume(tmp_path)
    samples = volume / "samples"
    samples.mkdir()
    for name in ("contacts.csv", "sandbox-fixture.json"):
        shutil.copy(ROOT / "samples" / name, samples / name)
    demo = [
        "run",
        "--sandbox",
        "samples/contacts.csv",
        "--action",
        "add",
        "--tags",
        "vip,newsletter",
    ]

    inside = start(image, demo, volume)
    here = tmp_path / "here"
    shutil.copytree(samples, here / "samples")
    outside = subprocess.run(
        [sys.executable, "-m", "batcher", *demo],
        cwd=here,
        capture_output=True,
        text=True,
        timeout=BOUND_S,
        check=False,
        env={**os.environ, "BATCHER_STATE_DIR": str(here / "state")},
    )

    assert outside.returncode == 0, outside.stderr
    assert inside.returncode == outside.returncode, inside.stderr
    assert "writable" not in inside.stderr
    report = volume / "contacts-report.csv"
    assert report.stat().st_uid == 10001
    assert report.read_bytes() == (here / "contacts-report.csv").read_bytes()
    assert report.read_bytes().count(b"\n") > 2000
    state = volume / "state"
    info = state.stat()
    assert info.st_uid == 10001
    assert stat.S_IMODE(info.st_mode) & 0o077 == 0
    assert len(list(state.glob("run-*.sqlite"))) == 1
