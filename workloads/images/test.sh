#!/usr/bin/env bash
# Run each built image's entrypoint on committed inputs, inside the image (buildah run), and
# check what it wrote (`make images-test`; `make images` first). Inputs are prepared with the
# test environments, so the image must reach the same result as the tested code:
#   benchmark: `leanrag-benchmark --from-report` on a committed real GuideLLM report → the
#              same verdict and checks as .venv-workloads computes on it;
#   quantize:  compresses a tiny random-weight Llama (INT8 W8A8) → a compressed checkpoint and
#              its quality record;
#   ingest:    ingests the sample corpus into Milvus Lite → the same chunk count as the host.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGES=${IMAGES:-quantize ingest benchmark}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
WORK=$PWD/out/images/test
rm -rf "$WORK"; mkdir -p "$WORK/in" "$WORK/out"; chmod 0777 "$WORK/out"
B=(buildah --storage-driver vfs)
run_in() {  # image, then its entrypoint's arguments; /in read-only, /out writable by its user
  chmod -R a+rX "$WORK/in"  # the image runs as UID 1001 (safetensors files are written 0600)
  local image="localhost/leanrag-$1:$VERSION"; shift
  # `buildah run` takes a command, not the entrypoint: run the image's own entrypoint.
  local entrypoint
  mapfile -t entrypoint < <("${B[@]}" inspect --type image "$image" | python3 -c \
    'import json, sys; print("\n".join(json.load(sys.stdin)["OCIv1"]["config"]["Entrypoint"]))')
  local ctr; ctr=$("${B[@]}" from --quiet "$image")
  local code=0
  "${B[@]}" run --isolation chroot --user 1001:0 -v "$WORK/in:/in:ro" -v "$WORK/out:/out" \
    "$ctr" -- "${entrypoint[@]}" "$@" || code=$?
  "${B[@]}" rm "$ctr" >/dev/null
  return $code
}
for image in $IMAGES; do
  t0=$(date +%s)
  case $image in
    benchmark)
      .venv/bin/leanrag plan --stack local --output "$WORK/in/plan.json" >/dev/null
      cp tests/golden/guidellm/vllm-cpu-rag-level.json "$WORK/in/report.json"
      code=0; run_in benchmark --plan /in/plan.json --from-report /in/report.json \
        --target http://127.0.0.1:8000 \
        --out /out/gate || code=$?
      host=0; .venv-workloads/bin/python -m workloads.benchmark --plan "$WORK/in/plan.json" \
        --from-report "$WORK/in/report.json" --target http://127.0.0.1:8000 --out "$WORK/host-gate" \
        >/dev/null || host=$?
      python3 - "$WORK/out/gate/gate.json" "$WORK/host-gate/gate.json" "$code" "$host" <<'PY'
import json, sys
image, host = (json.load(open(p)) for p in sys.argv[1:3])
assert sys.argv[3] == sys.argv[4], f"exit {sys.argv[3]} in the image, {sys.argv[4]} on the host"
assert image["verdict"] == host["verdict"], (image["verdict"], host["verdict"])
assert image["checks"] == host["checks"], "the image judged differently from the tested code"
print(f"benchmark image: verdict {image['verdict']} (exit {sys.argv[3]}), same as the host")
PY
      ;;
    quantize)
      arch='{"hidden_size": 64, "intermediate_size": 128, "num_layers": 2, "num_attention_heads": 4,
             "num_kv_heads": 2, "head_dim": 16, "vocab_size": 512, "max_context_tokens": 512,
             "tie_word_embeddings": false}'
      .venv-workloads/bin/python -m workloads.models --architecture "$arch" --out "$WORK/in/model" >/dev/null
      # Calibration text: the sample corpus's Markdown documents, as JSONL.
      python3 -c 'import json, pathlib, sys
for p in sorted(pathlib.Path(sys.argv[1]).rglob("*.md")):
    print(json.dumps({"text": p.read_text()}))' workloads/ingest/sample_corpus > "$WORK/in/calibration.jsonl"
      # Random weights: the quality check measures (transformers: the image has no vLLM) but a
      # budget would mean nothing, so it is set out of reach.
      run_in quantize --model /in/model --scheme int8-w8a8 --output /out/checkpoint \
        --calibration /in/calibration.jsonl --min-samples 1 --samples 8 --max-seq-len 128 \
        --max-kl 100 --min-agreement 0 --max-ppl-increase 100
      python3 - "$WORK/out/checkpoint" <<'PY'
import json, pathlib, sys
folder = pathlib.Path(sys.argv[1])
config = json.loads((folder / "config.json").read_text())
scheme = config["quantization_config"]["config_groups"]["group_0"]
assert scheme["weights"]["num_bits"] == 8 and scheme["input_activations"]["num_bits"] == 8, scheme
assert list(folder.glob("*.safetensors")), "no weights written"
quality = json.loads((folder / "leanrag-quantize.json").read_text())["quality"]
assert quality["measured"] and quality["measured_by"].startswith("transformers"), quality
assert (folder / "quality-reference.json").is_file(), "no quality reference for the gate"
print("quantize image: INT8 W8A8 checkpoint written (weights and activations 8-bit), quality "
      f"measured on {quality['passages']} held-out passages by transformers")
PY
      ;;
    ingest)
      run_in ingest --source /opt/leanrag/src/workloads/ingest/sample_corpus \
        --milvus-uri /out/ingest.db --no-progress --summary-json /out/ingest.json
      .venv-workloads/bin/leanrag-ingest --source workloads/ingest/sample_corpus \
        --milvus-uri "$WORK/host-ingest.db" --no-progress --summary-json "$WORK/host-ingest.json" >/dev/null
      python3 - "$WORK/out/ingest.json" "$WORK/host-ingest.json" <<'PY'
import json, sys
image, host = (json.load(open(p)) for p in sys.argv[1:3])
keys = ["files", "chunks", "stored_chunks", "sources"]
assert image["stored_chunks"] > 0, image
assert all(image[k] == host[k] for k in keys), {k: (image[k], host[k]) for k in keys}
print("ingest image:", {k: image[k] for k in keys[:3]}, "- same as the host")
PY
      ;;
    *) echo "unknown image $image" >&2; exit 2 ;;
  esac
  echo "$image: tested in $(( $(date +%s) - t0 )) s"
done
