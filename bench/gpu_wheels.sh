#!/usr/bin/env bash
# The wheels bench/gpu_check.sh needs on this workplace's H200 machine, which reaches no package
# registry: its image ('cuda', Python 3.12) has CUDA torch, pytest and much else, but not
# transformer_lens or snakemake. Run here, with a network, from anywhere in the repository:
#
#   bash bench/gpu_wheels.sh
#
# It fills .whl/ (ignored by git; a device call names it in `carry`) with one cp312 manylinux
# x86-64 (or pure-Python) wheel per package that the project's dependencies and its `test` extra
# need, the whole closure (Requires-Dist read from each wheel, extras skipped, markers evaluated
# for CPython 3.12 on x86-64 Linux), less what the image already holds at a compatible version.
# Versions are those of this checkout's .venv where they fit (what the tests run with here),
# else the newest that fits. Wheels already in .whl/ are reused, others there are removed; it
# fails if the wheels pass GPU_WHEELS_LIMIT_MIB (default 50: a device call carries 64 MiB, the
# working tree included).
#
# Left out on purpose (SKIP below): the linters ruff and snakefmt (gpu_check runs none), and what
# transformer_lens lists but imports only in its training tools, which the project does not use
# (wandb: a 19 MiB wheel, and its own needs). A package with only an sdist gets a wheel built
# here if it is pure Python (connection_pool, transformers-stream-generator: neither is imported
# on the project's paths). GPU_WHEELS_ALSO="name ..." carries an image package anyway, at this
# .venv's version (for one whose version there, unknown here, turns out not to fit).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python} # a Python with pip and packaging, the project's .venv
DEST=.whl
LIMIT_MIB=${GPU_WHEELS_LIMIT_MIB:-50}

# ignored by git (so it travels only when carried), as /work/.library/device/README.md says
mkdir -p "$DEST"
git check-ignore -q "$DEST/x.whl" || echo /.whl/ >>"$(git rev-parse --git-path info/exclude)"

"$PY" - "$DEST" "${GPU_WHEELS_ALSO:-}" <<'EOF'
import email, subprocess, sys, tempfile, tomllib, zipfile
from collections import defaultdict
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

dest, also = Path(sys.argv[1]), {canonicalize_name(n) for n in sys.argv[2].split()}

# The image's Python packages (/work/.library/device/KINDS.md, read on 2026-11-17), with the
# versions a session's pip list there showed; None: there, version not known here.
IMAGE = dict.fromkeys(map(canonicalize_name, """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn
einops equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec
gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio
iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib
kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13
nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir
onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout
pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch
torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt
xarray xxhash yarl zipp""".split()))
IMAGE.update(accelerate="1.15.0", huggingface_hub="1.33.0", jaxtyping="0.3.11", numpy="2.5.2",
             safetensors="0.8.0", sentencepiece="0.2.2", tokenizers="0.23.2", torch="2.11.0",
             transformers="5.17.0", triton="3.6.0")
IMAGE = {canonicalize_name(name): version for name, version in IMAGE.items()}
SKIP = {
    "ruff": "a linter: gpu_check runs none",
    "snakefmt": "a linter: gpu_check runs none",
    "wandb": "19 MiB; transformer_lens imports it only in tools/training.py, unused here",
}
# the H200 image's Python: markers are evaluated for it
ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
       "platform_python_implementation": "CPython", "sys_platform": "linux", "os_name": "posix",
       "platform_system": "Linux", "platform_machine": "x86_64", "extra": ""}
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in range(39, 16, -1)]
PLATFORMS += ["manylinux2014_x86_64", "manylinux1_x86_64"]


def pip_download(spec):
    """The one wheel of `spec` for the image's Python, saved in dest; where the registry has
    only a source distribution, a pure-Python wheel built from it here."""
    pip = [sys.executable, "-m", "pip"]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    with tempfile.TemporaryDirectory() as tmp:
        if subprocess.run([*pip, "download", "-q", "--no-deps", "--only-binary=:all:",
                           "--python-version", "3.12", "--implementation", "cp", *platforms,
                           "-d", tmp, spec], stderr=subprocess.DEVNULL).returncode:
            print(f"{spec}: no wheel for CPython 3.12, building one from its sdist", flush=True)
            subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-binary=:all:", "-w", tmp,
                            spec], check=True)
            if not next(Path(tmp).glob("*.whl")).name.endswith("-py3-none-any.whl"):
                sys.exit(f"{spec}: the wheel built here is not pure Python, so not for the H200")
        (wheel,) = Path(tmp).glob("*.whl")
        return Path(wheel.replace(dest / wheel.name))


def requires(wheel):
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return [Requirement(r) for r in email.message_from_bytes(zf.read(name))
                .get_all("Requires-Dist", [])]


def installed(name):
    """The version this checkout's .venv has, the one the tests run with here."""
    try:
        return Version(metadata.version(name))
    except metadata.PackageNotFoundError:
        return None


have = {parse_wheel_filename(w.name)[:2]: w for w in dest.glob("*.whl")}
project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
queue = [Requirement(r) for r in project["dependencies"]]
queue += [Requirement(r) for r in project["optional-dependencies"]["test"]]
specs, chosen, why, unverified = defaultdict(SpecifierSet), {}, {}, set()
while queue:
    req = queue.pop(0)
    if req.marker and not req.marker.evaluate(ENV):
        continue
    name = canonicalize_name(req.name)
    specs[name] &= req.specifier
    if name in SKIP:
        continue
    if name in IMAGE and name not in also:
        version = IMAGE[name]
        if version is None:
            unverified.add(name)
            continue
        if specs[name].contains(version, prereleases=True):
            continue
        why[name] = f"the image's {version} does not fit {specs[name]}"
    if name in chosen:
        if not specs[name].contains(chosen[name], prereleases=True):
            sys.exit(f"{name} {chosen[name]} does not fit {specs[name]}: pin one that does")
        continue
    pin = installed(name)
    if not (pin and specs[name].contains(pin, prereleases=True)):
        wheel = pip_download(f"{name}{specs[name]}")
    elif (name, pin) in have:
        wheel = have[name, pin]
    else:
        wheel = pip_download(f"{name}=={pin}")
    chosen[name] = parse_wheel_filename(wheel.name)[1]
    have[name, chosen[name]] = wheel
    queue += requires(wheel)

keep = {have[name, version] for name, version in chosen.items()}
for wheel in set(dest.glob("*.whl")) - keep:
    wheel.unlink()
for wheel in sorted(keep):
    note = why.get(parse_wheel_filename(wheel.name)[0])
    note = f"  ({note})" if note else ""
    print(f"{wheel.stat().st_size / 2**20:7.2f} MiB  {wheel.name}{note}")
for name, reason in SKIP.items():
    print(f"left out: {name} ({reason})")
checks = ", ".join(f"{n}{specs[n]}" for n in sorted(unverified) if str(specs[n]))
print(f"taken from the image unchecked (version unknown here): {checks}")
EOF

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
wheels=$(du -cb "$DEST"/*.whl | tail -n 1 | cut -f 1)
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null |
    tail -n 1 | cut -f 1)
count=$(find "$DEST" -maxdepth 1 -type f -name '*.whl' | wc -l)
echo "$count wheels in $DEST: $(mib "$wheels")" \
    "(and the working tree that travels with them: $(mib "$tree"); 64 MiB at most)"
if ((wheels > LIMIT_MIB * 1048576)); then
    echo "too big: more than $LIMIT_MIB MiB of wheels" >&2
    exit 1
fi
