"""``client.videos.remix`` of the official ``openai`` SDK: video-to-video of a completed video."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from luma_ray.scheduler.protocol import GetJob
from tests.unit.served_app import openai_client, run, run_next, served_app

openai = pytest.importorskip("openai")


def test_remix_is_video_to_video_of_the_callers_completed_video(tmp_path: Path) -> None:
    served = served_app(tmp_path)

    def client(tenant: str) -> Any:
        return openai_client(served, tenant)

    alice = client("alice")
    video = run(alice.videos.create(prompt="a red circle moving right", seconds="2"))
    with pytest.raises(openai.BadRequestError, match="only a succeeded generation"):
        run(alice.videos.remix(video.id, prompt="a blue circle"))  # not completed yet
    run_next(served)
    remix = run(alice.videos.remix(video.id, prompt="a blue circle moving right"))
    assert remix.remixed_from_video_id == video.id and remix.status == "queued"
    assert remix.prompt == "a blue circle moving right" and remix.size == video.size
    job = served.svc.call(GetJob(remix.id, "alice"))
    assert job.params.inputs.source_video and job.params.inputs.strength == 0.6
    assert job.params.frames == served.svc.call(GetJob(video.id, "alice")).params.frames
    assert run(alice.videos.retrieve(remix.id)).remixed_from_video_id == video.id
    with pytest.raises(openai.NotFoundError):  # another tenant's video is not there for bob
        run(client("bob").videos.remix(video.id, prompt="mine now"))


def test_the_spritesheet_variant_downloads_a_decodable_image(tmp_path: Path) -> None:
    """The thumbnail stage's spritesheet (here made by the built-in stage from the job's own
    MP4, as a stage worker would) downloads through the SDK as a PNG that decodes."""
    import io

    from PIL import Image

    served = served_app(tmp_path)
    alice = openai_client(served, "alice")
    video = run(alice.videos.create(prompt="a red circle moving right", seconds="2"))
    job_id = run_next(served, spritesheet=True)
    view = served.svc.call(GetJob(job_id, "alice"))

    content = run(alice.videos.download_content(video.id, variant="spritesheet"))
    image = Image.open(io.BytesIO(content.read()))
    image.load()
    assert image.format == "PNG" and image.width > view.params.width  # a grid of frames
