#!/usr/bin/env bash
# Download the models of one or more modes: `download-models.sh "i2v:lightning,ti2v" [DEST]`.
# Each item is MODE or MODE:PRESET; DEST defaults to wan-worker's own choice (MODELS_DIR...).
# Used at image build time (BAKE_MODELS) and at container start (DOWNLOAD_MODELS); files already
# present are kept, so running it again only fetches what is missing.
set -euo pipefail

spec=${1:?usage: download-models.sh MODE[:PRESET][,MODE[:PRESET]...] [DEST]}
dest=${2:-}

IFS=',' read -r -a items <<<"$spec"
for item in "${items[@]}"; do
    item=${item//[[:space:]]/}
    [ -n "$item" ] || continue
    mode=${item%%:*}
    args=(models download "$mode")
    if [ "$item" != "$mode" ]; then
        args+=(--preset "${item#*:}")
    fi
    if [ -n "$dest" ]; then
        args+=(--dest "$dest")
    fi
    echo "download-models.sh: wan-worker ${args[*]} --yes" >&2
    wan-worker "${args[@]}" --yes
done
