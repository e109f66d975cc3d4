"""The request the vision-language judge sends, part by part: roles, content types, the frame as a lossless PNG.

The scripted server of tests/openai_stub.py accepts any body, so these checks stand where a real
chat-completions server would refuse a malformed message. What the step's text asks (the judge's
prompt and request fields) is tests/test_judge.py's.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import PIL.Image
import pytest

from cooklab.metrics import VisionJudge, judge_metrics
from cooklab.metrics.judge import JUDGE_PROMPT, STEP_PROMPT
from cooklab.recipe import Recipe

TOLD_ANSWER = json.dumps({"reason": "a bowl", "step_shown": True, "ingredients": []})
BLIND_ANSWER = json.dumps({"reason": "a bowl", "step_shown": True})  # steps that list no ingredient: one question


@pytest.mark.parametrize(
    "prompt, system_prompt, answer", [("told", JUDGE_PROMPT, TOLD_ANSWER), ("blind", STEP_PROMPT, BLIND_ANSWER)]
)
def test_each_frame_is_one_system_and_one_user_message_with_the_picture_as_a_png(
    server, prompt, system_prompt, answer
):
    server.script = [("content", answer)]
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (8, 12, 3), dtype=np.uint8) for _ in range(2)]
    recipe = Recipe(title="Soup", steps=["Boil water in a pot.", "Add the carrots."])
    judge_metrics(frames, recipe, VisionJudge("stub-vision", base_url=server.url, retry_delay=0.01, prompt=prompt))
    assert len(server.requests) == 2
    for frame, request in zip(frames, server.requests):
        body = request["body"]
        assert body["model"] == "stub-vision"
        system, user = body["messages"]
        assert system == {"role": "system", "content": system_prompt}
        assert user["role"] == "user" and [part["type"] for part in user["content"]] == ["text", "image_url"]
        text, image = user["content"]
        assert set(text) == {"type", "text"} and set(image) == {"type", "image_url"}
        url = image["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        picture = PIL.Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert picture.format == "PNG" and np.array_equal(np.asarray(picture.convert("RGB")), frame)  # lossless
