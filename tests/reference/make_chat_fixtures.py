#!/usr/bin/python3
"""Writes tests/data/chat/templates.json: conversations rendered by the chat templates real models
ship, with Jinja2 (python3-jinja2) set up the way Hugging Face's apply_chat_template sets it up
(sandboxed, trim_blocks and lstrip_blocks, raise_exception). tests/text/test_chat.cpp checks that
text::ChatTemplate detects each template and renders the same text.

Templates (from each model's tokenizer_config.json):
  chatml  teknium/OpenHermes-2.5-Mistral-7B (the ChatML form Qwen2 and TRL use)
  llama2  meta-llama/Llama-2-7b-chat-hf
  llama3  meta-llama/Meta-Llama-3-8B-Instruct
  zephyr  HuggingFaceH4/zephyr-7b-beta
Run: /usr/bin/python3 tests/reference/make_chat_fixtures.py
"""
import json
import os

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATES = {
    "chatml": ("", "<|im_end|>",
               "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
               "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
               "{{ '<|im_start|>assistant\\n' }}{% endif %}"),
    "llama2": ("<s>", "</s>",
               "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
               "{% set system_message = messages[0]['content'] %}{% else %}"
               "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
               "{% for message in loop_messages %}{% if (message['role'] == 'user') != "
               "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
               "user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and "
               "system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
               "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}"
               "{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
               "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
               "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + "
               "eos_token }}{% endif %}{% endfor %}"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>",
               "{% set loop_messages = messages %}{% for message in loop_messages %}"
               "{% set content = '<|start_header_id|>' + message['role'] + "
               "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}"
               "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
               "{{ content }}{% endfor %}{% if add_generation_prompt %}"
               "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"),
    "zephyr": ("", "</s>",
               "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
               "{{ '<|user|>\\n' + message['content'] + eos_token }}\n"
               "{% elif message['role'] == 'system' %}\n"
               "{{ '<|system|>\\n' + message['content'] + eos_token }}\n"
               "{% elif message['role'] == 'assistant' %}\n"
               "{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif %}\n"
               "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n"
               "{% endfor %}"),
}

CONVERSATIONS = [
    ([{"role": "system", "content": "You are a helpful assistant"},
      {"role": "user", "content": "Hello"},
      {"role": "assistant", "content": "Hi there"},
      {"role": "user", "content": "Who are you"},
      {"role": "assistant", "content": "   I am an assistant   "},
      {"role": "user", "content": "Another question"}], True),
    ([{"role": "user", "content": "What is a daemon?"},
      {"role": "assistant", "content": "A program that runs in the background."}], False),
    ([{"role": "system", "content": "Answer in one line."},
      {"role": "user", "content": "Define 'kludge'.\n"},
      {"role": "assistant", "content": "A clumsy but working fix."}], False),
]


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
env.globals["raise_exception"] = raise_exception
cases = []
for name, (bos, eos, source) in TEMPLATES.items():
    t = env.from_string(source)
    for messages, gen in CONVERSATIONS:
        text = t.render(messages=messages, add_generation_prompt=gen, bos_token=bos,
                        eos_token=eos)
        cases.append({"format": name, "template": source, "bos_token": bos, "eos_token": eos,
                      "messages": messages, "add_generation_prompt": gen, "expected": text})
path = os.path.join(os.path.dirname(__file__), "..", "data", "chat", "templates.json")
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as f:
    json.dump({"generator": "tests/reference/make_chat_fixtures.py",
               "jinja2": jinja2.__version__, "cases": cases}, f, indent=1)
    f.write("\n")
print("wrote", os.path.normpath(path), len(cases), "cases")
