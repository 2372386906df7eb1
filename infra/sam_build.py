"""What `make build` (`sam build`) leaves in .aws-sam/build: each function's code and the layers
as Lambda unpacks them. Read by the build tests and the benchmark."""

import os
import re
import subprocess
from pathlib import Path
from typing import Any, Literal

from infra.sam_template import load_template

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / ".aws-sam" / "build"
BUILT_TEMPLATE = BUILD_DIR / "template.yaml"
# ELF e_machine of AArch64, the arm64 Lambda's.
EM_AARCH64 = 183
# The project's target for one function with its layers, unzipped; Lambda refuses 250 MB.
SIZE_TARGET_MB = 50
LAMBDA_LIMIT_MB = 250
MB = 1024 * 1024  # Lambda's "MB" in its quotas
_COMPILED = re.compile(r"\.so(\.\d+)*$")


def ensure_built() -> Path:
    """The build output; when it is absent, built by `make build`, the one build command."""
    if not BUILT_TEMPLATE.exists():
        subprocess.run(["make", "build"], cwd=ROOT, check=True)  # noqa: S607
    return BUILD_DIR


def compiled_modules(build_dir: Path = BUILD_DIR) -> list[Path]:
    """Every shared object (``*.so``, ``*.so.N``) of every function and layer."""
    return sorted(path for path in build_dir.rglob("*") if _COMPILED.search(path.name))


def elf_header(path: Path) -> dict[str, int] | None:
    """The fields of an ELF header that say what runs it; None for a file that is not ELF."""
    header = path.read_bytes()[:20]
    if header[:4] != b"\x7fELF":
        return None
    byteorder: Literal["little", "big"] = "little" if header[5] == 1 else "big"
    return {
        "class": header[4],
        "osabi": header[7],
        "machine": int.from_bytes(header[18:20], byteorder),
    }


def _tree_bytes(folder: Path) -> int:
    return sum(
        (Path(root) / name).lstat().st_size for root, _, names in os.walk(folder) for name in names
    )


def function_sizes(build_dir: Path = BUILD_DIR) -> dict[str, dict[str, Any]]:
    """Each function's unzipped size with its layers (what Lambda's 250 MB limit counts), by
    logical id, from the built template (code and layers point into the build folder)."""
    template = load_template(build_dir / "template.yaml")
    built = template["Resources"]
    global_layers = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    sizes: dict[str, dict[str, Any]] = {}
    for name, resource in built.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        # SAM appends a function's own layers to the global ones.
        layers = [layer["Ref"] for layer in [*global_layers, *properties.get("Layers", [])]]
        code = _tree_bytes(build_dir / properties["CodeUri"])
        with_layers = code + sum(
            _tree_bytes(build_dir / built[layer]["Properties"]["ContentUri"]) for layer in layers
        )
        sizes[name] = {
            "code_mb": round(code / MB, 2),
            "layers": layers,
            "unzipped_with_layers_mb": round(with_layers / MB, 2),
        }
    return sizes
