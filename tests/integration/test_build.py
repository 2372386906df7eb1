"""The output of `sam build` is what Lambda runs: arm64 (aarch64) compiled modules, the layer's
included, and functions within their size. `make test` builds first; a pytest run alone builds
through the same `make build` when the output is absent."""

import json
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


@pytest.mark.xfail(
    strict=True,
    reason="68 MB: the layer holds botocore (20 MB, through aws-xray-sdk; the runtime has one) "
    "and twilio's unused async stack (aiohttp and its deps, 11 MB); SAM's python builder "
    "cannot leave them out, a custom layer build (BuildMethod: makefile) can",
)
def test_every_function_with_its_layer_is_within_the_size_target(sizes):
    over = {n: s["unzipped_with_layers_mb"] for n, s in sizes.items()}
    assert {n: mb for n, mb in over.items() if mb >= SIZE_TARGET_MB} == {}, over
