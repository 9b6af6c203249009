"""POST /v1/classify: texts in, label + probabilities (+ word contributions) out, over saved artifacts."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from slmkit.serve._protocol import ClassifyRequest, ClassifyResponse
from slmkit.serve._state import ServerState, check_texts, get_state

router = APIRouter(prefix="/v1", tags=["classify"])


def _plain(value):
    return value.item() if hasattr(value, "item") else value


@router.post("/classify", response_model=ClassifyResponse)
async def classify(body: ClassifyRequest, state: ServerState = Depends(get_state)) -> dict:
    check_texts(state, body.texts, "texts")
    entry = state.registry.get(body.model, ("classifier",))
    clf = await state.run(state.classifier, entry)
    classes = [_plain(c) for c in clf.classes_]
    probas = await state.batcher.submit(("classify", entry.target), body.texts, lambda t: list(clf.predict_proba(t)))
    results = []
    for proba in probas:
        best = int(max(range(len(classes)), key=lambda k: proba[k]))
        results.append({"label": classes[best],
                        "probabilities": {str(c): round(float(p), 6) for c, p in zip(classes, proba)}})
    if body.explain:
        from slmkit.classify import explain

        labels = [clf.classes_[list(classes).index(r["label"])] for r in results]
        explanations = await state.run(lambda: explain(clf, body.texts, labels=labels, method=body.explain_method))
        for result, item in zip(results, explanations):
            result["words"] = item.to_dict()["words"]
    return {"model": entry.name, "results": results}
