"""Small corpora in every raw format the readers accept, written to a temporary folder."""

from __future__ import annotations

import os
import shutil
import subprocess

from core import testing

from .. import data

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.basename(PROJECT_DIR)  # "word2vec_lstm", or the copy's name
REPO = os.path.dirname(os.path.dirname(PROJECT_DIR))
CONFIGS = os.path.join(PROJECT_DIR, "configs")


def write_bbc_subset(directory: str, per_class: int = 30) -> str:
    """The first `per_class` real BBC News articles of each topic, in the same folder-per-class layout."""
    source = data.bbc_news_dir()
    for name in sorted(os.listdir(source)):
        os.makedirs(os.path.join(directory, name), exist_ok=True)
        for file in sorted(os.listdir(os.path.join(source, name)))[:per_class]:
            shutil.copy(os.path.join(source, name, file), os.path.join(directory, name, file))
    return directory


def write_chinese_folder(directory: str) -> str:
    """A THUCNews-style tree: one folder per class (Chinese names), one UTF-8 article per file."""
    articles = {
        "体育": ["中国队在世界杯预选赛中以二比一战胜对手。", "篮球比赛今晚在北京举行，球迷热情高涨。"],
        "财经": ["股市今天上涨，银行股领涨大盘。", "央行宣布下调利率，市场反应积极。"],
    }
    for label, texts in articles.items():
        os.makedirs(os.path.join(directory, label), exist_ok=True)
        for i, text in enumerate(texts):
            with open(os.path.join(directory, label, f"{i}.txt"), "w", encoding="utf-8") as f:
                f.write(text)
    return directory


def run_module(binary: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs `python -m projects.<project>.<binary> args...` from the repo root."""
    return testing.run_module(f"projects.{PROJECT}.{binary}", *args, timeout=timeout)
