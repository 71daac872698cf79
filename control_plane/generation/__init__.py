"""Traders generated from a sentence by an LLM (issue 20 part 3; seed 000 "generate-strategy").

``_prompt`` (what the model is told: the sandbox's filter contract, the trader fields, the
answer schema), ``_generator`` (ask, check in the sandbox, repair), ``_store`` (the
``trader_generations`` record and the paused trader), ``_http`` (``POST /generate-trader``).
``control-plane traders generate`` runs the same code from the CLI."""

from control_plane.generation._generator import (
    GeneratedTrader,
    GenerationFailed,
    GenerationMeta,
    TraderGenerator,
    Validate,
)
from control_plane.generation._http import GENERATE_PATH, GenerationRoute, add_generation_route
from control_plane.generation._prompt import PROMPT_VERSION, TRADER_SCHEMA, system_message
from control_plane.generation._store import SavedTrader, UnknownUser, generate_and_save, spec_json

__all__ = [
    "GENERATE_PATH",
    "PROMPT_VERSION",
    "TRADER_SCHEMA",
    "GeneratedTrader",
    "GenerationFailed",
    "GenerationMeta",
    "GenerationRoute",
    "SavedTrader",
    "TraderGenerator",
    "UnknownUser",
    "Validate",
    "add_generation_route",
    "generate_and_save",
    "spec_json",
    "system_message",
]
