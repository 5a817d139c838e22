#!/usr/bin/env bash
# Push the images `make images` built to $REGISTRY (e.g. quay.io/yourorg) and record each
# pushed digest in out/images/digests.json; point a stack's leanrag:images at them
# (`quay.io/yourorg/leanrag-benchmark@sha256:...`, see README "Images"). TRANSPORT picks
# another destination kind of buildah's (default docker://; oci: writes an OCI layout folder).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${REGISTRY:?set REGISTRY, e.g. make push REGISTRY=quay.io/yourorg}"
IMAGES=${IMAGES:-quantize ingest benchmark}
TRANSPORT=${TRANSPORT:-docker://}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
mkdir -p out/images
records=()
for image in $IMAGES; do
  digest_file=$(mktemp)
  buildah --storage-driver vfs push --digestfile "$digest_file" \
    "localhost/leanrag-$image:$VERSION" "$TRANSPORT$REGISTRY/leanrag-$image:$VERSION"
  digest=$(cat "$digest_file"); rm -f "$digest_file"
  echo "$image: $REGISTRY/leanrag-$image@$digest"
  records+=("\"$image\": \"$REGISTRY/leanrag-$image@$digest\"")
done
( IFS=,; echo "{${records[*]}}" ) | python3 -m json.tool > out/images/digests.json
echo "wrote out/images/digests.json"
