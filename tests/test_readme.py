from pathlib import Path

from spreadbus.config import Settings

README = Path(__file__).parent.parent / "README.md"


def test_readme_documents_every_setting_and_both_set_up_commands() -> None:
    text = README.read_text()
    missing = [n for n in Settings.model_fields if f"`SPREADBUS_{n.upper()}`" not in text]
    assert not missing, f"README settings table lacks {missing}"
    assert text.index("make run") < text.index("## How it fits together")
    assert "make test" in text and "```mermaid" in text
