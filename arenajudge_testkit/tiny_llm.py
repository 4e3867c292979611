"""A tiny Llama made on the spot for real-vLLM tests: no hub, no download.

Hidden size 64, 2 layers, 2 heads of size 32 (vLLM's CPU attention takes head sizes 32, 64,
80, ...), a byte-level BPE tokenizer trained here with `tokenizers`, and a chat template.
Random weights from a fixed seed: the output is printable, deterministic gibberish.

`decisive=LABEL` makes a judge that says nothing but LABEL: the layers add nothing, every
token embeds alike, and the output head points at LABEL's token, so greedy decoding repeats it.

Usage: `python -m arenajudge_testkit.tiny_llm DIR [--decisive "[[A>B]]"]` or `make_tiny_llama(path)`.
"""

from __future__ import annotations

import argparse
import string
from pathlib import Path

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
LABELS = ("[[A>>B]]", "[[A>B]]", "[[A=B]]", "[[B>A]]", "[[B>>A]]")


def _corpus() -> list[str]:
    words = ("the answer question model judge assistant user system better worse equal because first second "
             "python code function list number result verdict final explain reason example value").split()
    lines = []
    for i in range(400):
        lines.append(" ".join(words[(i * k) % len(words)] for k in range(1, 12)) + f" {i}.")
    lines.append(string.printable)
    lines.append("Привет, как дела? Ответ на вопрос.")
    return lines


def make_tiny_llama(path: Path, *, decisive: str | None = None, vocab_size: int = 512, seed: int = 0) -> Path:
    import torch
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer)
    if decisive is not None:  # one token per label; the gibberish model cannot say a label by chance
        tok.add_tokens([AddedToken(label, special=False, normalized=False) for label in LABELS])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="</s>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, head_dim=32, max_position_embeddings=4096,
                         bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                         pad_token_id=fast.pad_token_id, tie_word_embeddings=False, torch_dtype="float32")
    model = LlamaForCausalLM(config)
    if decisive is not None:
        target = fast.convert_tokens_to_ids(decisive)
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.o_proj.weight.zero_()
                layer.mlp.down_proj.weight.zero_()
            same = torch.linspace(0.5, 1.5, config.hidden_size)
            model.model.embed_tokens.weight.copy_(same.expand_as(model.model.embed_tokens.weight))
            model.model.norm.weight.fill_(1.0)
            model.lm_head.weight.zero_()
            model.lm_head.weight[target] = same
    model.save_pretrained(path)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--decisive", choices=LABELS)
    args = parser.parse_args()
    print(make_tiny_llama(args.path, decisive=args.decisive))
