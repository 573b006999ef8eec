"""The worker of the seed app's `video_transcoding` task, written against SDK 1.0b3 (run by its virtualenv)."""

from avtomatika_worker import Worker

worker = Worker(worker_type="gpu-transcoder")


@worker.task("video_transcoding")
async def transcode(params, **kwargs):
    return {"status": "success", "data": {"output_path": params["input_path"] + ".mp4", "duration": 95}}


if __name__ == "__main__":
    worker.run()
