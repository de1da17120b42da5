from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite

import prefect_scenario
from prefect_scenario import exceptions as exc
from prefect_scenario.credentials import ScenarioCredentials, resolve_credentials
from prefect_scenario.webhooks import ScenarioWebhook

ROOT = Path(__file__).resolve().parents[1]


class TestScenarioCredentialsStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return ScenarioCredentials

    def test_has_a_valid_image(self, block: type[Block]) -> None:
        # No logo URL until the project has a public home that serves it (a URL that does not
        # resolve is a broken image in the Blocks page); the logo it will serve is checked.
        assert block._logo_url is None
        with Image.open(ROOT / "docs" / "logo.png") as logo:
            assert logo.width == logo.height and 1000 > logo.width > 45


class TestScenarioWebhookStandards(TestScenarioCredentialsStandards):
    @pytest.fixture
    def block(self) -> type[Block]:
        return ScenarioWebhook


def test_the_webhook_block_hides_its_secrets() -> None:
    hook = ScenarioWebhook(
        endpoint_id="we_1", public_url="https://h.example/s", path_token="tok-31337", secret="whsec-1"
    )
    for text in (repr(hook), str(hook), hook.model_dump_json(), str(hook.model_dump()), hook.redacted_url()):
        assert "tok-31337" not in text and "whsec-1" not in text
    assert hook.endpoint_url() == "https://h.example/s/tok-31337"


def test_from_env_and_the_missing_variables_are_named() -> None:
    env = {"SCENARIO_API_KEY": "k", "SCENARIO_API_SECRET": "s", "SCENARIO_PROJECT_ID": "p"}
    creds = ScenarioCredentials.from_env({**env, "SCENARIO_BASE_URL": "http://127.0.0.1:8787/v1"})
    assert creds.base_url == "http://127.0.0.1:8787/v1"
    with pytest.raises(exc.ConfigurationError, match="SCENARIO_API_SECRET, SCENARIO_PROJECT_ID"):
        ScenarioCredentials.from_env({"SCENARIO_API_KEY": "k"})


def test_secrets_are_masked_everywhere_but_the_client() -> None:
    creds = ScenarioCredentials(api_key="key-31337", api_secret="secret-8675309", project_id="p")
    for text in (repr(creds), str(creds), creds.model_dump_json(), str(creds.model_dump())):
        assert "secret-8675309" not in text and "key-31337" not in text
    client = creds.get_client()
    assert "secret-8675309" not in repr(client)


async def test_check_refuses_unusable_settings() -> None:
    with pytest.raises(exc.ConfigurationError):
        await resolve_credentials(ScenarioCredentials(api_key="k", api_secret="s", project_id=" "))
    with pytest.raises(exc.ConfigurationError, match="plain http"):
        await resolve_credentials(
            ScenarioCredentials(api_key="k", api_secret="s", project_id="p", base_url="http://x.io/v1")
        )


def test_secrets_are_unwrapped_in_one_place() -> None:
    package = ROOT / "prefect_scenario"
    sources = {p.relative_to(package).as_posix(): p.read_text() for p in package.rglob("*.py")}
    unwraps = {name: len(re.findall(r"get_secret_value\(\)", text)) for name, text in sources.items()}
    # client._unwrap_credentials (key and secret), TrainingParameters.to_wire (the W&B key) and
    # ScenarioWebhook._token (the receiver's path). The webhook's signing secret is never unwrapped.
    assert {k: v for k, v in unwraps.items() if v} == {"api/http.py": 2, "catalog.py": 1, "webhooks/block.py": 1}


def test_public_api_is_exported() -> None:
    for name in prefect_scenario.__all__:
        assert getattr(prefect_scenario, name) is not None
    assert "train_lora" in prefect_scenario.__all__ and "ScenarioCredentials" in prefect_scenario.__all__


def test_collection_entry_point_registers_the_block() -> None:
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="prefect.collections") if e.name == "prefect_scenario"]
    assert entry.load() is prefect_scenario


BLOCKS = [prefect_scenario.ScenarioCredentials, prefect_scenario.ScenarioTraining, prefect_scenario.ScenarioBudget,
          prefect_scenario.ScenarioWebhook, prefect_scenario.ScenarioLoRA]  # fmt: skip


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.__name__)
def test_every_block_field_has_a_title_and_a_description_in_the_ui_form(block: type[Block]) -> None:
    schema = block.model_json_schema()
    untold = [
        name for name, field in schema["properties"].items() if not field.get("title") or not field.get("description")
    ]
    assert not untold
    # An acronym keeps its case in the form: "API key", "AWS credentials", not "Api Key", "Aws Credentials".
    titles = [field["title"] for field in schema["properties"].values()]
    assert not [t for t in titles if re.search(r"\b(Api|Aws|Url|Id)\b", t)], titles


def test_the_training_block_s_nested_forms_title_their_fields_in_sentence_case() -> None:
    # Pydantic titles a field from its alias ("Nbepochs" for nbEpochs); the forms show the words
    # and, for a parameter, the API's name for it.
    from prefect_scenario._titles import field_title

    definitions = prefect_scenario.ScenarioTraining.model_json_schema()["definitions"]
    for model in ("TrainingParameters", "EvaluationOptions"):
        for name, field in definitions[model]["properties"].items():
            words = field_title(name, None)  # camelCase split as snake_case
            assert field["title"].partition(" (")[0] == words, (model, name, field["title"])


def test_the_blocks_catalog_gets_the_package_s_five_blocks_and_no_generic_base() -> None:
    # A Prefect server registers every Block class in the client's registry (its block
    # auto-registration); a parametrized `JobBlock[...]` base used to show up as a card of its own.
    from prefect.utilities.dispatch import get_registry_for_type

    ours = {
        slug: cls.__module__
        for slug, cls in (get_registry_for_type(Block) or {}).items()
        if cls.__module__.startswith("prefect_scenario") or "[" in cls.__name__
    }
    assert sorted(ours) == [
        "scenario-budget",
        "scenario-credentials",
        "scenario-lora",
        "scenario-training",
        "scenario-webhook",
    ], ours
