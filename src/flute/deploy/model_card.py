"""model-card.md: the human-readable side of an artifact (F-PIL-24, TRIPOD+AI reporting).

Rendered from the manifest only, so every figure in the card is one the signature covers.
"""

from __future__ import annotations

from flute.deploy.manifest import Manifest


def render_model_card(manifest: Manifest) -> str:
    model, prov, privacy, rule = manifest.model, manifest.provenance, manifest.privacy, manifest.decision
    features = "\n".join(
        f"| {f.name} | {f.unit or '-'} | {_range(f.minimum, f.maximum, f.allowed_values)} | {f.source} |" for f in manifest.features
    )
    logged = ", ".join(manifest.preprocessing.log_transform) or "none"
    categorical = ", ".join(f"{name} (levels {', '.join(f'{v:g}' for v in levels)}; reference {levels[0]:g})" for name, levels in manifest.preprocessing.categories.items()) or "none"
    missing = (
        "imputed with the training means (declared in the manifest)"
        if manifest.preprocessing.impute_missing
        else "not scored: every variable is required"
    )
    pets = ", ".join(privacy.pets) or "none beyond federation (only aggregates left the hubs)"
    budget = f"epsilon = {privacy.epsilon:g}, delta = {privacy.delta:g}" if privacy.epsilon is not None else "no differential privacy"
    return f"""# Model card: {model.title}

Model `{model.model_id}` version {model.version} ({model.model_type}), trained by federated study
`{prov.study_id}` at {len(prov.hubs)} hubs ({", ".join(prov.hubs)}) in {prov.rounds} rounds on
{prov.trained_at.isoformat()} with FLUTE {prov.code_version} (study spec SHA-256 {prov.spec_sha256}).
{_structure(manifest)}

## Intended use
Estimates the probability of clinically significant prostate cancer (csPCa, ISUP grade group >= 2)
for men considered for prostate biopsy who meet the study inclusion criteria (PSA >= 3 ng/mL or a
suspicious digital rectal examination) and had a prostate MRI with a PI-RADS score. It supports,
and does not replace, the shared decision on biopsy: at the decision threshold {rule.threshold:g}, a risk at or
above it means "biopsy recommended", below it "biopsy may be avoided".

## Inputs
| variable | unit (UCUM) | allowed | FHIR source |
|---|---|---|---|
{features}

Log-transformed: {logged}. Category indicators: {categorical}. Missing values: {missing}.

## Population
The pooled cohorts of the participating hubs (see provenance); patients outside the allowed
ranges above are refused rather than extrapolated.

## Performance
{_performance(manifest)}

## Privacy
Privacy-enhancing technologies: {pets}; {budget}.

## Limitations
- Validated only on the hubs' populations; performance elsewhere (other MRI protocols, PI-RADS
  reading practice, referral patterns) must be checked locally before clinical use.
- Risks are calibrated to the training prevalence; a site with a very different csPCa prevalence
  should check calibration first.
- Not for men already diagnosed with prostate cancer, nor for active surveillance decisions.

## Ethical notes
The model informs a clinician and the patient; it must not be the sole basis of a decision.
Missing biopsies may delay diagnosis in the false negatives (see the net benefit above); the
threshold expresses how many unnecessary biopsies one would accept to find one csPCa and should be
agreed with clinicians and patients. No patient-level data were used outside their hospital.
"""


def _structure(manifest: Manifest) -> str:
    model = manifest.model
    shape = ", ".join(f"{key} {value}" for key, value in sorted(model.architecture.items()))
    weights = f"Architecture: {shape}. " if shape else ""
    if model.fhir_library:
        export = "It is also published as a FHIR Library with CQL (`flute model library`)."
        if manifest.site_intercepts:
            export += " Its `Site` parameter selects a training site's intercept (none: the common one)."
    else:
        export = (
            f"No FHIR Library / CQL export: a {model.model_type} model is not a closed-form formula; "
            "it is scored only by the FLUTE scoring service (`flute score run|serve`)."
        )
    return f"{weights}{export}{_sites(manifest)}"


def _sites(manifest: Manifest) -> str:
    if not manifest.site_intercepts:
        return ""
    offsets = ", ".join(f"{site} {offset:+.3f}" for site, offset in manifest.site_intercepts.items())
    return (
        "\nOne intercept per training site (stratified intercepts): log-odds added to the common intercept - "
        f"{offsets}. A training site scores with its own (`flute score run|serve --site NAME`); any other site with the common one."
    )


def _range(minimum: float | None, maximum: float | None, allowed: tuple[float, ...]) -> str:
    if allowed:
        return ", ".join(f"{v:g}" for v in allowed)
    if minimum is None and maximum is None:
        return "any"
    return f"{'' if minimum is None else f'{minimum:g}'} .. {'' if maximum is None else f'{maximum:g}'}"


def _performance(manifest: Manifest) -> str:
    metrics = manifest.validation
    if metrics is None:
        return "No validation figures were packaged with this model; validate it locally before use."
    calibration = (
        f"calibration intercept {metrics.calibration_intercept:.3f}, slope {metrics.calibration_slope:.3f}"
        if metrics.calibration_intercept is not None and metrics.calibration_slope is not None
        else "calibration not estimable"
    )
    return (
        f"{metrics.method}: n = {metrics.n} ({metrics.events} csPCa). AUROC {metrics.auroc:.3f} "
        f"(95 % CI {metrics.auroc_ci_low:.3f}-{metrics.auroc_ci_high:.3f}); {calibration}; net benefit at "
        f"{metrics.net_benefit_threshold:g}: {metrics.net_benefit:.4f} (biopsy all: {metrics.net_benefit_biopsy_all:.4f})."
    )
