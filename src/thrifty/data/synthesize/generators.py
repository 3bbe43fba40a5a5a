"""The generators EntiGraph asks for entities and relation texts (papers/entigraph.md §2), and
what each one charges to the ledger.

``--generator`` names one:

- ``template``: the card's offline small-scale generator (§5), a fixed rule. It parses the
  document's sentences with the raw templates of :mod:`~thrifty.data.synthesize.world` and
  restates the facts about the asked entities with randomly chosen templates, in random order,
  plus the one-hop compositions through them; a sentence it cannot parse is kept verbatim when it
  names an asked entity. Deterministic in the task's seed. It has no training words: charged 0.
- ``run:PATH``: a thrifty run, sampled at ``temperature`` with a seed per task. Its ledger's
  charged words are charged, and its passes over its words are passed on as exposure (its text
  carries what it learned, as a distillation teacher's does).
- ``hf:NAME``: a local ``transformers`` causal LM (``local_files_only``), sampled likewise.
- ``http://…`` / ``https://…``: an OpenAI-compatible endpoint (``POST {url}/chat/completions``;
  a bearer key from ``$OPENAI_API_KEY`` when set). Unreachable or garbage answers are one-line
  :class:`~thrifty.errors.UserError` s naming the endpoint.

External models (``hf:``, ``http``) have training words on no ledger: the user declares them
(``--generator-words``), and they are charged and marked not BabyLM-compliant.
"""

from __future__ import annotations

import json
import os
import random
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from thrifty.data.budget import Ledger
from thrifty.data.synthesize.world import RELATIONS, Fact, compose, raw_pattern
from thrifty.errors import UserError

SYSTEM = (
    "You read a document and write new text grounded in it. Use only facts the document states "
    "or facts that follow from them."
)
TASKS = {
    "entities": "List the entities of the document (people, places, objects, concepts; as many "
    'as possible) as JSON: {"summary": "...", "entities": ["...", ...]}',
    "entity": "Ask and answer detailed questions about {0} in the context of the document.",
    "pair": "Discuss how {0} and {1} relate and interact in the document; rephrase what it says "
    "about each of them.",
    "triple": "Discuss how {0}, {1} and {2} relate and interact in the document.",
    "rephrase": "Rephrase the document in different words, keeping every fact.",
}


def prompt(kind: str, document: str, entities: tuple[str, ...] = ()) -> str:
    """The instruction for one task, the whole document in context (as in the paper's code)."""
    task = TASKS[kind].format(*entities) if entities else TASKS[kind]
    return f"Document:\n{document}\n\nTask: {task}\n\nAnswer:"


def split_sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def parse_facts(document: str) -> list[Fact | str]:
    """Each sentence as a :class:`Fact` of the world's grammar, or itself when not one."""
    patterns = {name: raw_pattern(name) for name in RELATIONS}
    out: list[Fact | str] = []
    for sentence in split_sentences(document):
        for name, pattern in patterns.items():
            m = pattern.match(sentence)
            if m:
                out.append(Fact(name, m["a"], m["b"]))
                break
        else:
            out.append(sentence)
    return out


class Template:
    """The offline generator of the card's small world (module docstring)."""

    spec = "template"
    extracts = False  # entities come from the rule extractor

    def describe(self) -> dict[str, Any]:
        return {"generator": self.spec}

    def relate(self, kind: str, document: str, entities: tuple[str, ...], seed: int) -> str:
        rng = random.Random(seed)
        parsed = parse_facts(document)
        facts = [p for p in parsed if isinstance(p, Fact)]

        def say(f: Fact) -> str:
            return f.statement(rng.randrange(len(RELATIONS[f.relation].templates)))

        if kind == "rephrase":  # sentence by sentence, in the document's order
            return " ".join(say(p) if isinstance(p, Fact) else p for p in parsed)
        asked = set(entities)
        out = [say(f) for f in facts if {f.a, f.b} & asked]
        out += [p for p in parsed if isinstance(p, str) and any(e in p for e in asked)]
        for comp, a, b, c in compose(facts):
            if {a, b, c} & asked:
                out.append(rng.choice(comp.templates).format(a=a, c=c))
        rng.shuffle(out)
        return " ".join(out)

    def charge(self, ledger: Ledger) -> None:
        ledger.charge_aux_model("EntiGraph generator template (a fixed rule, no training words)", 0)


class Prompted:
    """A language model that completes :func:`prompt` s; subclasses define ``complete``."""

    spec = ""
    extracts = True

    def __init__(self, temperature: float, max_new_tokens: int, declared: int | None) -> None:
        if temperature <= 0:
            raise UserError(f"--temperature must be positive, got {temperature}")
        self.temperature, self.max_new_tokens, self.declared = temperature, max_new_tokens, declared

    def describe(self) -> dict[str, Any]:
        return {"generator": self.spec, "temperature": self.temperature,
                "max_new_tokens": self.max_new_tokens}  # fmt: skip

    def complete(self, text: str, seed: int) -> str:
        raise NotImplementedError

    def relate(self, kind: str, document: str, entities: tuple[str, ...], seed: int) -> str:
        return self.complete(prompt(kind, document, entities), seed).strip()

    def extract(self, document: str, seed: int) -> list[str]:
        answer = self.complete(prompt("entities", document), seed)
        m = re.search(r"\{.*\}", answer, re.S)
        try:
            entities = json.loads(m[0])["entities"] if m else None
        except (json.JSONDecodeError, KeyError, TypeError):
            entities = None
        if not isinstance(entities, list) or not all(isinstance(e, str) for e in entities):
            raise UserError(
                f"generator {self.spec} answered garbage to entity extraction (expected JSON "
                f'with an "entities" list): {answer[:80]!r}'
            )
        return list(dict.fromkeys(e.strip() for e in entities if e.strip()))

    def charge(self, ledger: Ledger) -> None:
        if self.declared is None:
            raise UserError(
                f"generator {self.spec}: declare its training words (--generator-words)"
            )
        ledger.charge_aux_model(
            f"EntiGraph generator {self.spec} (training words as declared)",
            self.declared,
            noncompliant="an external generator whose training words are declared, not on record",
        )


class Run(Prompted):
    """A thrifty run's model, sampled token by token (no cache: generators here are small)."""

    def __init__(self, path: str, temperature: float, max_new_tokens: int) -> None:
        from thrifty.runs import load_model

        super().__init__(temperature, max_new_tokens, None)
        self.spec = f"run:{path}"
        self.loaded = load_model(path)
        self.tokenizer = self.loaded.tokenizer()

    def complete(self, text: str, seed: int) -> str:
        import torch

        from thrifty.data.tokenizer import BOS_ID, SPECIAL_IDS

        model = self.loaded.model
        room = model.cfg.max_seq_len - self.max_new_tokens
        if room < 2:
            raise UserError(f"--max-new-tokens leaves no room for the prompt in {self.spec}")
        ids = [BOS_ID, *self.tokenizer.encode(text, add_special_tokens=False).ids][-room:]
        gen = torch.Generator().manual_seed(seed)
        new: list[int] = []
        with torch.no_grad():
            for _ in range(self.max_new_tokens):
                h = model(torch.tensor([ids + new]))  # (1, T, C)
                logits = model.logits(h[:, -1]).float()[0] / self.temperature  # (V,)
                token = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
                if token in SPECIAL_IDS.values():
                    break
                new.append(token)
        return self.tokenizer.decode(new)

    def charge(self, ledger: Ledger) -> None:
        own = Ledger.from_dict(self.loaded.ledger()) if self.loaded.ledger() else Ledger()
        name = f"EntiGraph generator {Path(self.loaded.run_dir).name}"
        ledger.charge_aux_model(name, own.charged_words(), texts=own.known_texts())
        ledger.exposure += own.passed_on(name)


class HuggingFace(Prompted):
    """A local ``transformers`` causal LM."""

    def __init__(self, name: str, temperature: float, max_new_tokens: int, declared: int | None):
        super().__init__(temperature, max_new_tokens, declared)
        self.spec = f"hf:{name}"
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(name, local_files_only=True).eval()
        except (ImportError, OSError, ValueError) as e:
            raise UserError(
                f"generator {self.spec}: cannot load ({str(e).splitlines()[0]})"
            ) from None

    def complete(self, text: str, seed: int) -> str:
        import torch

        torch.manual_seed(seed)
        ids = self.tokenizer(text, return_tensors="pt")["input_ids"]
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None:  # keep the prompt's end ("Answer:") when it is too long
            ids = ids[:, -max(1, limit - self.max_new_tokens) :]
        with torch.no_grad():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True,
                                      temperature=self.temperature,
                                      max_new_tokens=self.max_new_tokens)  # fmt: skip
        return self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


class Endpoint(Prompted):
    """An OpenAI-compatible chat completions endpoint."""

    def __init__(self, url: str, model: str, temperature: float, max_new_tokens: int,
                 declared: int | None, timeout: float = 60.0) -> None:  # fmt: skip
        super().__init__(temperature, max_new_tokens, declared)
        self.spec, self.model, self.timeout = url.rstrip("/"), model, timeout

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.model}

    def complete(self, text: str, seed: int) -> str:
        body = {"model": self.model, "temperature": self.temperature, "seed": seed,
                "max_tokens": self.max_new_tokens,
                "messages": [{"role": "system", "content": SYSTEM},
                             {"role": "user", "content": text}]}  # fmt: skip
        headers = {"Content-Type": "application/json"}
        if os.environ.get("OPENAI_API_KEY"):
            headers["Authorization"] = f"Bearer {os.environ['OPENAI_API_KEY']}"
        url = f"{self.spec}/chat/completions"
        request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            raise UserError(f"generator {url} answered HTTP {e.code} ({e.reason})") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise UserError(f"generator {url} is unreachable ({reason})") from None
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError):
            content = None
        if not isinstance(content, str):
            raise UserError(
                f"generator {url} answered garbage (not a chat completion): {raw[:80]!r}"
            )
        return content


def make_generator(spec: str, *, temperature: float = 1.0, max_new_tokens: int = 256,
                   declared_words: int | None = None, model: str = "default"):  # fmt: skip
    """The generator ``--generator`` names (module docstring)."""
    if spec == "template":
        return Template()
    if spec.startswith("run:"):
        return Run(spec[4:], temperature, max_new_tokens)
    if spec.startswith("hf:"):
        return HuggingFace(spec[3:], temperature, max_new_tokens, declared_words)
    if spec.startswith(("http://", "https://")):
        return Endpoint(spec, model, temperature, max_new_tokens, declared_words)
    raise UserError(
        f"--generator {spec!r}: use template, run:PATH, hf:NAME or an http(s):// endpoint"
    )
