#!/usr/bin/env bash
# Build batcher's container image from this repository (deploy/Containerfile), with buildah,
# podman or docker, whichever is here (the first of them that can build).
#
#   deploy/build-image.sh [--base IMAGE] [--tag NAME] [--tool buildah|podman|docker]
#
#   --base IMAGE   the Python image to build on (default python:3.12-slim; any Python 3.11+
#                  image whose `python3 -m venv` works)
#   --tag NAME     the image's name (default batcher:VERSION, VERSION from pyproject.toml)
#   --tool T       use T instead of the first one found
#
# BUILDAH_ISOLATION (buildah only) is honoured; it defaults to chroot, which needs no OCI runtime
# and works inside containers and on hosts where the runtime cannot start one.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/pyproject.toml" | head -n 1)
if [ -z "$version" ]; then
    echo "build-image.sh: no version in $root/pyproject.toml" >&2
    exit 2
fi
base=python:3.12-slim
tag="batcher:$version"
tool=

usage() { sed -n '2,14s/^# \{0,1\}//p' "$0"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --base) base=${2:?--base needs an image}; shift 2 ;;
        --tag) tag=${2:?--tag needs a name}; shift 2 ;;
        --tool) tool=${2:?--tool needs buildah, podman or docker}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "build-image.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

# docker's client may be installed without an engine to talk to: it counts only if one answers.
usable() {
    case "$1" in
        buildah | podman) command -v "$1" >/dev/null ;;
        docker) command -v docker >/dev/null && docker info >/dev/null 2>&1 ;;
        *) return 1 ;;
    esac
}
if [ -z "$tool" ]; then
    for candidate in buildah podman docker; do
        if usable "$candidate"; then tool=$candidate; break; fi
    done
    if [ -z "$tool" ]; then
        echo "build-image.sh: neither buildah, podman nor a running docker is here; install one" \
            "(Debian/Ubuntu: apt-get install buildah)" >&2
        exit 2
    fi
elif ! usable "$tool"; then
    echo "build-image.sh: $tool cannot build here (not installed, or no engine answers)" >&2
    exit 2
fi

args=(
    --file "$root/deploy/Containerfile"
    --build-arg "BASE=$base"
    --build-arg "VERSION=$version"
    --build-arg "REVISION=$(git -C "$root" rev-parse HEAD 2>/dev/null || true)"
    --build-arg "SOURCE=$(git -C "$root" remote get-url origin 2>/dev/null || true)"
    --tag "$tag"
)
case "$tool" in
    # docker reads deploy/Containerfile.dockerignore by itself (beside the Containerfile).
    docker) docker build "${args[@]}" "$root" ;;
    buildah)
        buildah bud --isolation "${BUILDAH_ISOLATION:-chroot}" \
            --ignorefile "$root/deploy/Containerfile.dockerignore" "${args[@]}" "$root"
        ;;
    podman) podman build --ignorefile "$root/deploy/Containerfile.dockerignore" "${args[@]}" "$root" ;;
esac

size=$("$tool" images --format '{{.Size}}' "$tag" 2>/dev/null | head -n 1 || true)
echo
echo "built $tag with $tool${size:+ ($size)}"
echo "to push it to your registry (then name it in deploy/kubernetes/*.yaml):"
case "$tool" in
    buildah | podman) echo "  $tool push $tag docker://REGISTRY/batcher:$version" ;;
    docker) echo "  docker tag $tag REGISTRY/batcher:$version && docker push REGISTRY/batcher:$version" ;;
esac
