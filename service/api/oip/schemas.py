"""The JSON shapes of the Open Inference Protocol v2 (``inference_rest.md``) and Triton's extensions.

Requests accept keys they do not know (clients add their own, e.g. the kserve client's ``model_name``)
and ignore request parameters they do not know; what they do read is checked strictly. The answer models
document the routes in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

_OPEN = ConfigDict(extra="allow")


class TensorParameters(BaseModel):
    model_config = _OPEN

    binary_data_size: StrictInt | None = Field(None, ge=0, description="Bytes of this input after the JSON.")
    binary_data: StrictBool | None = Field(None, description="Answer this output as binary data.")
    classification: StrictInt | None = Field(
        None, description="Answer the k best classes as BYTES '<score>:<index>:<label>' instead."
    )


class RequestInput(BaseModel):
    model_config = _OPEN

    name: StrictStr
    shape: list[StrictInt] = Field(max_length=8)
    datatype: StrictStr
    parameters: TensorParameters | None = None
    data: Any = Field(None, description="The elements (flat or nested, row-major), unless sent as binary.")


class RequestOutput(BaseModel):
    model_config = _OPEN

    name: StrictStr
    parameters: TensorParameters | None = None


class InferParameters(BaseModel):
    model_config = _OPEN

    binary_data_output: StrictBool | None = Field(None, description="Answer every output as binary data.")
    truncate: StrictBool | None = Field(
        None, description="TEXT longer than the model's max_length is cut (default, as /classify) or refused."
    )


class InferRequest(BaseModel):
    """``$inference_request``: an optional id, the inputs, and optionally the outputs wanted."""

    model_config = _OPEN

    id: StrictStr | None = None
    parameters: InferParameters | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadataResponse(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadataResponse(BaseModel):
    name: str
    version: str
    extensions: list[str]


class HealthResponse(BaseModel):
    live: bool
    ready: bool


class ModelReadyResponse(BaseModel):
    name: str
    ready: bool


class RepositoryModel(BaseModel):
    name: str
    version: str | None = None
    state: str
    reason: str = ""


class DurationStat(BaseModel):
    count: int
    ns: int


class InferenceStats(BaseModel):
    success: DurationStat
    fail: DurationStat
    queue: DurationStat
    compute_input: DurationStat
    compute_infer: DurationStat
    compute_output: DurationStat
    cache_hit: DurationStat
    cache_miss: DurationStat


class BatchStat(BaseModel):
    batch_size: int
    compute_input: DurationStat
    compute_infer: DurationStat
    compute_output: DurationStat


class ModelStat(BaseModel):
    name: str
    version: str
    last_inference: int
    inference_count: int
    execution_count: int
    inference_stats: InferenceStats
    batch_stats: list[BatchStat]


class StatisticsResponse(BaseModel):
    model_stats: list[ModelStat]
