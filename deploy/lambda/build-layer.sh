#!/usr/bin/env bash
# Builds the AuraStream collector's two Lambda layers from one source (README "Lambda
# layers"), each a zip with extensions/aurastream-collector and aurastream/lambda.yaml (read
# via AURASTREAM_CONFIG=/opt/aurastream/lambda.yaml):
#
#   target/lambda/aurastream-collector-layer-<arch>.zip       full: default features,
#       deploy/config/lambda.yaml (X-Ray PutTraceSegments, CloudWatch Logs PutLogEvents)
#   target/lambda/aurastream-collector-lean-layer-<arch>.zip  lean: --no-default-features --features ring,
#       deploy/config/lambda-lean.yaml (SigV4 OTLP/HTTP to X-Ray and CloudWatch Logs; needs
#       X-Ray Transaction Search on)
#
# Lambda starts every executable in /opt/extensions/ as an external extension; a layer's
# files land under /opt, so the binary goes to extensions/ inside the zip. The binary is
# built with the `lambda` profile (fat LTO, one codegen unit, stripped, panic=abort).
#
# Usage: deploy/lambda/build-layer.sh [x86_64|arm64]...   (default: x86_64, plus arm64 if
# the aarch64-unknown-linux-gnu target is installed; targets are never downloaded here)
# LAYERS="lean" or LAYERS="full" builds one of the two (default: "full lean").
#
# glibc: the binary links the build machine's glibc dynamically but only needs the
# symbols it uses; built on Debian 12 (glibc 2.36) it needs GLIBC_2.34, which Amazon Linux
# 2023 runtimes have (provided.al2023, python3.12+, nodejs20+, java21) and Amazon Linux 2
# runtimes (provided.al2, glibc 2.26) do not. The script prints the newest version needed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

installed="$(rustup target list --installed 2>/dev/null || true)"
arches=("$@")
if [ ${#arches[@]} -eq 0 ]; then
    arches=(x86_64)
    if grep -qx aarch64-unknown-linux-gnu <<<"$installed"; then
        arches+=(arm64)
    fi
fi

layers=(${LAYERS:-full lean})

out="$root/target/lambda"
mkdir -p "$out"
for arch in "${arches[@]}"; do
for layer in "${layers[@]}"; do
    case "$layer" in
        full) features=(); config=lambda.yaml; name=aurastream-collector-layer ;;
        lean) features=(--no-default-features --features ring); config=lambda-lean.yaml
              name=aurastream-collector-lean-layer ;;
        *) echo "unknown layer $layer (full or lean)" >&2; exit 2 ;;
    esac
    case "$arch" in
        x86_64) triple=x86_64-unknown-linux-gnu ;;
        arm64) triple=aarch64-unknown-linux-gnu ;;
        *) echo "unknown architecture $arch (x86_64 or arm64)" >&2; exit 2 ;;
    esac
    if ! grep -qx "$triple" <<<"$installed"; then
        echo "skipping $arch: target $triple is not installed (rustup target add $triple)" >&2
        continue
    fi
    cargo build --profile lambda --target "$triple" -p aurastream-collector \
        --bin aurastream-collector ${features[@]+"${features[@]}"}
    bin="$root/target/$triple/lambda/aurastream-collector"
    stage="$(mktemp -d)"
    trap 'rm -rf "$stage"' EXIT
    mkdir -p "$stage/extensions"
    cp "$bin" "$stage/extensions/aurastream-collector"
    chmod 755 "$stage/extensions/aurastream-collector"
    # The deployment's config, at the path the template's AURASTREAM_CONFIG names.
    mkdir -p "$stage/aurastream"
    cp "$root/deploy/config/$config" "$stage/aurastream/lambda.yaml"
    zip_path="$out/$name-$arch.zip"
    rm -f "$zip_path"
    if command -v zip >/dev/null; then
        (cd "$stage" && zip -q -9 -X -r "$zip_path" extensions aurastream)
    else
        # No `zip` tool: Python's zipfile writes the same layout (keeping the exec bit).
        python3 - "$stage" "$zip_path" <<'PY'
import os, sys, zipfile
stage, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    path = os.path.join(stage, "extensions", "aurastream-collector")
    info = zipfile.ZipInfo("extensions/aurastream-collector", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o100755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(path, "rb") as f:
        z.writestr(info, f.read(), compresslevel=9)
    config = os.path.join(stage, "aurastream", "lambda.yaml")
    info = zipfile.ZipInfo("aurastream/lambda.yaml", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o100644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(config, "rb") as f:
        z.writestr(info, f.read(), compresslevel=9)
PY
    fi
    rm -rf "$stage"
    trap - EXIT
    printf '%s (%s): binary %s bytes, layer %s bytes\n' "$zip_path" "$layer" \
        "$(stat -c %s "$bin")" "$(stat -c %s "$zip_path")"
    if command -v objdump >/dev/null; then
        printf 'needs glibc %s\n' \
            "$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1)"
    fi
done
done
