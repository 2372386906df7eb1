"""The output of `sam build` is what Lambda runs: arm64 (aarch64) compiled modules, the layer's
included, and functions within their size. `make test` builds first; a pytest run alone builds
through the same `make build` when the output is absent."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.sam_build import (
    BUILD_DIR,
    EM_AARCH64,
    LAMBDA_LIMIT_MB,
    SIZE_TARGET_MB,
    compiled_modules,
    elf_header,
    ensure_built,
    function_sizes,
)
from infra.sam_template import resources

SIZES_RECORD = BUILD_DIR / "function-sizes.json"
LAYER = Path(__file__).resolve().parents[2] / "layers" / "whatsapp_gateway"
ELFCLASS64 = 2
LINUX_OSABI = {0, 3}  # System V (what compilers write) and Linux


@pytest.fixture(scope="session")
def build() -> Path:
    return ensure_built()


@pytest.fixture(scope="session")
def sizes(build: Path) -> dict[str, dict[str, Any]]:
    measured = function_sizes(build)
    SIZES_RECORD.write_text(json.dumps(measured, indent=2) + "\n")
    return measured


def test_every_compiled_module_of_the_build_is_aarch64_linux(build):
    modules = compiled_modules(build)
    # Not vacuous: pydantic's core is compiled, in the layer (SAM builds layers for x86_64
    # unless told otherwise).
    pydantic_core = [m for m in modules if m.name.startswith("_pydantic_core.")]
    assert pydantic_core, modules
    assert pydantic_core[0].is_relative_to(build / "GatewayLayer")

    headers = {str(module.relative_to(build)): elf_header(module) for module in modules}
    wrong = {
        path: header
        for path, header in headers.items()
        if header is None
        or header["class"] != ELFCLASS64
        or header["osabi"] not in LINUX_OSABI
        or header["machine"] != EM_AARCH64
    }
    assert wrong == {}


def test_every_function_of_the_template_is_built_and_measured(sizes):
    assert set(sizes) == set(resources("AWS::Serverless::Function"))
    assert json.loads(SIZES_RECORD.read_text()) == sizes
    for name, size in sizes.items():
        assert size["layers"] == ["GatewayLayer"], name
        assert size["unzipped_with_layers_mb"] < LAMBDA_LIMIT_MB, (name, size)


def test_every_function_with_its_layer_is_within_the_size_target(sizes):
    over = {n: s["unzipped_with_layers_mb"] for n, s in sizes.items()}
    assert {n: mb for n, mb in over.items() if mb >= SIZE_TARGET_MB} == {}, over


def _left_out(variable: str) -> list[str]:
    """A list of package names from the layer's Makefile (continuation lines included)."""
    makefile = (LAYER / "Makefile").read_text().replace("\\\n", " ")
    found = re.search(rf"^{variable} := (.+)$", makefile, re.MULTILINE)
    assert found, variable
    return found[1].split()


def test_every_handler_imports_without_what_the_layer_leaves_out(build):
    never_imported = _left_out("NEVER_IMPORTED")
    left_out = [
        name for name in never_imported if (build / "GatewayLayer" / "python" / name).exists()
    ]
    assert left_out == []
    handlers = [
        f"{Path(f['Properties']['CodeUri']).name}.app"
        for f in resources("AWS::Serverless::Function").values()
    ]
    # Every handler, and the Twilio REST client with the Messages and Content APIs it calls,
    # in a fresh interpreter where the left-out packages cannot be imported.
    program = f"""
import importlib.abc, sys
class LeftOut(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {never_imported!r}:
            raise ImportError(f"{{name}} is left out of the layer")
sys.meta_path.insert(0, LeftOut())
for handler in {handlers!r}:
    importlib.import_module(handler)
from twilio.rest import Client
client = Client("AC" + "0" * 32, "token")
client.api.v2010.accounts("AC" + "0" * 32).messages, client.content.v1.content_and_approvals
"""
    roots = [LAYER, LAYER.parents[1] / "functions", LAYER.parents[1]]
    done = subprocess.run(
        [sys.executable, "-c", program],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, roots))},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
