"""Makers for the harmonic phonon benchmark (atomate2 style: dataclasses with ``make``).

* :class:`ReferencePhononMaker` - reference phonons for one material, imported from a file or
  computed with a (DFT) calculator on the given cell: [import | displacements -> forces] -> analysis.
* :class:`MLIPPhononMaker` - one model on one material: relax -> displacements -> forces ->
  analysis (on the reference's band path) -> compare.

Both take plain dicts or jobflow OutputReferences, so a stored reference can be reused without
re-running its jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobflow import Flow, Maker

from pftflow.flows import jobs
from pftflow.phonons.harmonic import PhononSettings


@dataclass
class ReferencePhononMaker(Maker):
    """Reference phonons for one material.

    ``mode="import"``: read ``material["reference_file"]`` (phonopy / MDR / atomate2).
    ``mode="compute"``: finite displacements of ``material["structure"]`` with ``calculator``
    (e.g. GPAW through the ASE backend); the cell is used as given unless ``relax_settings`` is
    set, in which case it is first relaxed with the same calculator (FixSymmetry + cell filter).
    """

    name: str = "reference phonons"
    mode: str = "import"
    calculator: dict | None = None
    settings: PhononSettings = field(default_factory=PhononSettings)
    relax_settings: dict | None = None

    def make(self, material: dict) -> Flow:
        mid = material["id"]
        settings = self.settings.as_dict()
        if self.mode == "import":
            imp = jobs.import_reference(
                material["reference_file"],
                fmt=material.get("reference_format"),
                material_id=mid,
                force_sets=material.get("force_sets"),
                born=material.get("born"),
            )
            imp.name = f"import reference {mid}"
            ana = jobs.phonon_analysis(mid, None, None, None, settings, reference=imp.output["reference"], label="reference")
            ana.name = f"reference analysis {mid}"
            return Flow([imp, ana], output=ana.output, name=f"{self.name} {mid}")
        if self.mode != "compute":
            raise ValueError(f"reference mode must be 'import' or 'compute', got {self.mode!r}")
        if self.calculator is None:
            raise ValueError("reference mode 'compute' needs a calculator")
        structure = material["structure"]
        job_list = []
        if self.relax_settings is not None:
            rlx = jobs.relax(structure, self.calculator, self.relax_settings)
            rlx.name = f"reference relax {mid}"
            job_list.append(rlx)
            structure = rlx.output["structure"]
        disp = jobs.displacements(
            structure,
            material["supercell_matrix"],
            material.get("primitive_matrix"),
            distance_A=self.settings.displacement_A,
            symprec=self.settings.symprec,
        )
        disp.name = f"reference displacements {mid}"
        frc = jobs.forces(disp.output["supercells"], self.calculator)
        frc.name = f"reference forces {mid}"
        ana = jobs.phonon_analysis(
            mid,
            structure,
            material["supercell_matrix"],
            material.get("primitive_matrix"),
            settings,
            dataset=disp.output["dataset"],
            forces_eV_per_A=frc.output["forces_eV_per_A"],
            label="reference",
        )
        ana.name = f"reference analysis {mid}"
        return Flow(job_list + [disp, frc, ana], output=ana.output, name=f"{self.name} {mid}")


@dataclass
class MLIPPhononMaker(Maker):
    """One model on one material, compared with the reference analysis output."""

    name: str = "mlip phonons"
    relax_settings: dict | None = None
    settings: PhononSettings = field(default_factory=PhononSettings)
    relax: bool = True

    def make(self, reference, calculator: dict, material_id: str, model_name: str) -> Flow:
        settings = self.settings.as_dict()
        job_list = []
        relax_info = None
        structure = reference["structure"]
        if self.relax:
            rlx = jobs.relax(reference["structure"], calculator, self.relax_settings)
            rlx.name = f"relax {material_id} {model_name}"
            job_list.append(rlx)
            structure = rlx.output["structure"]
            relax_info = rlx.output
        disp = jobs.displacements(
            structure,
            reference["supercell_matrix"],
            reference["primitive_matrix"],
            distance_A=self.settings.displacement_A,
            symprec=self.settings.symprec,
        )
        disp.name = f"displacements {material_id} {model_name}"
        frc = jobs.forces(disp.output["supercells"], calculator)
        frc.name = f"forces {material_id} {model_name}"
        ana = jobs.phonon_analysis(
            material_id,
            structure,
            reference["supercell_matrix"],
            reference["primitive_matrix"],
            settings,
            dataset=disp.output["dataset"],
            forces_eV_per_A=frc.output["forces_eV_per_A"],
            band_path_spec=reference["band_path"],
            label=model_name,
            relax_info=relax_info,
            mesh=reference["result"]["mesh"]["mesh"],
        )
        ana.name = f"analysis {material_id} {model_name}"
        cmp_ = jobs.compare(reference, ana.output, model_name)
        cmp_.name = f"compare {material_id} {model_name}"
        job_list += [disp, frc, ana, cmp_]
        return Flow(job_list, output=cmp_.output, name=f"{self.name} {material_id} {model_name}")
