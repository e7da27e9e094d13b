from funnel_shared.schemas import render_schemas

from tests.conftest import REPO_ROOT

SCHEMA_DIR = REPO_ROOT / "docs" / "schemas"


def test_stored_json_schemas_match_the_models() -> None:
    rendered = render_schemas()
    stored = {path.name: path.read_text() for path in SCHEMA_DIR.glob("*.json")}
    assert set(stored) == set(rendered), "regenerate: uv run python -m funnel_shared.schemas"
    for name, text in rendered.items():
        assert stored[name] == text, (
            f"{name} drifted from the model; regenerate with"
            " `uv run python -m funnel_shared.schemas docs/schemas`"
        )


def test_every_published_record_type_has_a_schema() -> None:
    assert {
        "contact-event.v1.json",
        "stage-changed.v1.json",
        "stage-blocked.v1.json",
        "contact-merged.v1.json",
        "stage-stalled.v1.json",
        "stage-output.v1.json",
        "rejected.v1.json",
    } <= set(render_schemas())
