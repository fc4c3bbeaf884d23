"""Great Expectations itself: the reference engine, the fallback for expectations the native engine does not
answer, and the renderer of Data Docs pages. Imported only when needed: `import great_expectations` alone
takes ~4 s."""
from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd

from govtrain.data.io import DataError


def _plain(value: Any) -> Any:
    """numpy scalars (np.bool_, np.float64) as Python values: GE's to_json_dict leaves some in place."""
    return value.item() if hasattr(value, "item") else str(value)


def run_ge(frame: pd.DataFrame, suite_json: dict[str, Any]) -> dict[str, Any]:
    """GE's ExpectationSuiteValidationResult for one frame, as plain JSON."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no phoning home from a pipeline step
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    batch_definition = (context.data_sources.add_pandas("govtrain")
                        .add_dataframe_asset("split").add_batch_definition_whole_dataframe("whole"))
    try:
        suite = context.suites.add(gx.ExpectationSuite(**suite_json))
    except Exception as exc:
        raise DataError(f"expectation suite {suite_json.get('name')!r} is invalid: {str(exc).splitlines()[0]}") from exc
    result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
    return json.loads(json.dumps(result.to_json_dict(), default=_plain))


def data_docs_html(result_json: dict[str, Any]) -> str:
    """GE's own Data Docs page for one validation result, self-contained (its CDN assets inlined)."""
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    from govtrain.data.docs_offline import offline

    result = ExpectationSuiteValidationResultSchema().load(result_json)
    return offline(DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result)))
