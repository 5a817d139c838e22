#!/usr/bin/env bash
# Build the workload images with buildah (no registry needed): a Debian 12 root filesystem
# from Debian's packages (debootstrap), a Python base on it, then each image of $IMAGES, saved
# as an OCI archive under out/images/ with its size and build time in out/images/images.json.
# Needs root (or rootless buildah), `apt-get install buildah debootstrap`; see README "Images".
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGES=${IMAGES:-quantize ingest benchmark}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
REVISION=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
SOURCE=${SOURCE:-https://github.com/leanrag/lean-rag-accelerator}
MIRROR=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
OUT=out/images
mkdir -p "$OUT"
for tool in buildah podman debootstrap; do
  command -v "$tool" >/dev/null || { echo "make images needs $tool: apt-get install -y buildah podman debootstrap" >&2; exit 2; }
done
B=(buildah --storage-driver vfs)
# vfs copies every layer whole: one image's build peaks at ≈ 4 GB in buildah's storage plus
# ≈ 3 GB of uncompressed layer in $TMPDIR (measured on the benchmark image, 2026-12-03). Say so
# before a build that would stop on "no space left on device" after minutes.
need_gib=8
for dir in "$("${B[@]}" info --format '{{.store.GraphRoot}}' 2>/dev/null || echo /var/lib/containers)" \
           "${TMPDIR:-/var/tmp}"; do
  probe=$dir; while [ ! -d "$probe" ]; do probe=$(dirname "$probe"); done
  free_gib=$(( $(df -Pk "$probe" | awk 'NR == 2 {print $4}') / 1048576 ))
  if [ "$free_gib" -lt "$need_gib" ]; then
    echo "warning: $free_gib GiB free under $dir; an image build peaks at ≈ $need_gib GiB" \
      "across buildah's storage and \$TMPDIR: free space, or set TMPDIR to a larger disk" >&2
  fi
done
# Package sources for pip inside the build: the host's CA bundle (mounted, never copied) and
# any local wheel folders or indexes the host's pip uses (PIP_FIND_LINKS, file:// indexes).
MOUNTS=()
[ -f /etc/ssl/certs/ca-certificates.crt ] && MOUNTS+=(-v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro)
PIP_ARGS=()
if [ -n "${PIP_FIND_LINKS:-}" ]; then
  for dir in $PIP_FIND_LINKS; do [ -d "$dir" ] && MOUNTS+=(-v "$dir:$dir:ro"); done
  PIP_ARGS+=(--build-arg "PIP_FIND_LINKS=$PIP_FIND_LINKS")
fi
extra=$(pip config get global.extra-index-url 2>/dev/null || true)
if [ -n "$extra" ]; then
  # A file:// index's pages link to files beside its simple/ folder: mount the index's parent.
  for url in $extra; do
    dir=${url#file://}; dir=${dir%/}; [ "$(basename "$dir")" = simple ] && dir=$(dirname "$dir")
    if [ "file://$dir" != "$url" ] && [ -d "$dir" ]; then MOUNTS+=(-v "$dir:$dir:ro"); fi
  done
  PIP_ARGS+=(--build-arg "PIP_EXTRA_INDEX_URL=$extra")
fi

if ! "${B[@]}" inspect --type image localhost/leanrag-debian:bookworm >/dev/null 2>&1; then
  t0=$(date +%s); rootfs=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >/dev/null
  chmod 0755 "$rootfs"  # mktemp made it 0700, and it becomes the image's /
  tar -C "$rootfs" -c . | podman --storage-driver vfs import --quiet - localhost/leanrag-debian:bookworm >/dev/null
  rm -rf "$rootfs"
  echo "debian base (debootstrap) in $(( $(date +%s) - t0 )) s"
fi
if ! "${B[@]}" inspect --type image localhost/leanrag-python:bookworm >/dev/null 2>&1; then
  t0=$(date +%s)
  "${B[@]}" bud --quiet --isolation chroot --layers=false -f workloads/images/python.Containerfile \
    -t localhost/leanrag-python:bookworm . >/dev/null
  echo "python base in $(( $(date +%s) - t0 )) s"
fi

# Per workload: its pyproject extra and what the image is for.
declare -A EXTRA=([benchmark]=gate [quantize]=quantize [ingest]=rag)
declare -A DESCRIPTION=(
  [benchmark]="Lean RAG post-deploy gate: GuideLLM with the plan's traffic, judged against the plan"
  [quantize]="Lean RAG model compression: LLM Compressor (FP8, INT8 W8A8, W4A16)"
  [ingest]="Lean RAG ingestion: Docling, chunks, embeddings, Milvus"
)
records=()
for image in $IMAGES; do
  [ -n "${EXTRA[$image]:-}" ] || { echo "unknown image $image (quantize, ingest, benchmark)" >&2; exit 2; }
  t0=$(date +%s)
  tag=localhost/leanrag-$image:$VERSION
  "${B[@]}" bud --quiet --isolation chroot --layers=false "${MOUNTS[@]}" "${PIP_ARGS[@]}" \
    --build-arg "WORKLOAD=$image" --build-arg "EXTRA=${EXTRA[$image]}" \
    --build-arg "DESCRIPTION=${DESCRIPTION[$image]}" \
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" --build-arg "SOURCE=$SOURCE" \
    -f workloads/images/workload.Containerfile -t "$tag" . >/dev/null
  seconds=$(( $(date +%s) - t0 ))
  archive=$OUT/leanrag-$image-$VERSION.oci.tar
  rm -f "$archive"
  "${B[@]}" push --quiet "$tag" "oci-archive:$archive:$tag"
  bytes=$(stat -c %s "$archive")
  echo "$image: $tag built in ${seconds} s, archive $archive ($(( bytes / 1048576 )) MiB)"
  records+=("{\"image\": \"$image\", \"tag\": \"$tag\", \"revision\": \"$REVISION\", \"build_seconds\": $seconds, \"archive\": \"$archive\", \"archive_bytes\": $bytes}")
done
( IFS=,; echo "[${records[*]}]" ) | python3 -m json.tool > "$OUT/images.json"
echo "wrote $OUT/images.json"
