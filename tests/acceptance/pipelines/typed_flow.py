"""A Python pipeline with an approval between typed steps: the step after the approval
takes no input and reads the build's output, typed, from ``ctx.outputs``."""

from __future__ import annotations

from pydantic import BaseModel

from lockgate import Pipeline, StepContext, kinds, step


class Image(BaseModel):
    name: str
    tag: str


@step
def build(ctx: StepContext) -> Image:
    return Image(name="registry.example/app", tag="1.0")


@step
def deploy(ctx: StepContext) -> dict[str, str]:
    image = ctx.outputs["build"]
    assert isinstance(image, Image)  # typed as the producer declares it
    approved = ctx.outputs["go"]["approved_by"]
    return {"deployed": f"{image.name}:{image.tag}", "approved_by": ",".join(approved)}


pipeline = Pipeline(
    "typed-flow",
    [build, kinds.approval("go", message="Deploy the build?"), deploy],
)
