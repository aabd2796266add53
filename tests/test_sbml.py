"""Real networks (SPEC §11): SBML in and out, Michaelis-Menten kinetics, driven boundary species."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import hand_network, regime
from oscsim.dataset import load, save, simulate
from oscsim.dynamics import Kinetics, drive_signal, integrate
from oscsim.identifiability import michaelis_menten_identifiability
from oscsim.models import MichaelisMentenModel
from oscsim.network import topology_network
from oscsim.sbml import SBMLError, export_network, read_sbml, sbml_params


def ecoli(**changes):
    """E. coli core's simulation settings (conf/simulation/sbml.yaml) with `changes`."""
    import yaml

    from conftest import ROOT

    sim = yaml.safe_load((ROOT / "conf" / "simulation" / "sbml.yaml").read_text())
    return sbml_params({**sim, "name": "e_coli_core", "path": "cobra:textbook", **changes})[0]

# A hand-written SBML Level 2 Version 4 model: A (boundary) + B -> C, 2 C -> B, and an exchange EX_D of D, so D
# becomes a boundary species the way an FBA model's extracellular metabolites do.
LEVEL2 = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level2/version4" level="2" version="4">
  <model id="hand">
    <listOfCompartments><compartment id="c" size="1"/></listOfCompartments>
    <listOfSpecies>
      <species id="A" compartment="c" initialConcentration="1" boundaryCondition="true"/>
      <species id="B" compartment="c" initialConcentration="1"/>
      <species id="C" compartment="c" initialConcentration="1"/>
      <species id="D" compartment="c" initialConcentration="1"/>
      <species id="unused" compartment="c" initialConcentration="1"/>
    </listOfSpecies>
    <listOfReactions>
      <reaction id="R1"><listOfReactants><speciesReference species="A"/><speciesReference species="B"/></listOfReactants>
        <listOfProducts><speciesReference species="C"/></listOfProducts></reaction>
      <reaction id="R2"><listOfReactants><speciesReference species="C" stoichiometry="2"/></listOfReactants>
        <listOfProducts><speciesReference species="B"/><speciesReference species="D"/></listOfProducts></reaction>
      <reaction id="EX_D"><listOfReactants><speciesReference species="D"/></listOfReactants></reaction>
    </listOfReactions>
  </model>
</sbml>
"""


def write(tmp_path: Path, text: str, name: str = "model.xml") -> str:
    f = tmp_path / name
    f.write_text(text)
    return str(f)


def test_reads_level2_with_boundary_and_exchanged_species(tmp_path):
    top = read_sbml(write(tmp_path, LEVEL2))
    assert top.species == ("A", "B", "C", "D")  # `unused` takes part in no kept reaction
    assert top.boundary == (True, False, False, True)  # A declared, D exchanged by EX_D
    assert top.reactions == ("R1", "R2")
    assert top.reactants == ({0: 1, 1: 1}, {2: 2}) and top.products == ({2: 1}, {1: 1, 3: 1})
    assert top.dropped == {"pseudo-reaction": 1}


def test_topology_network_boundary_species_drive_but_do_not_change():
    p = regime("sbml", path="x", n_metabolites=4, n_reactions=2, n_metabolite_types=1)
    net = topology_network([{0: 1, 1: 1}, {2: 2}], [{2: 1}, {1: 1, 3: 1}], np.array([True, False, False, True]), p)
    assert net.substrate_edges.tolist() == [[0, 0, 1], [1, 0, 1], [2, 1, 2]]
    S = net.S
    assert np.all(S[[0, 3]] == 0)  # boundary species: no reaction changes them
    assert S[1].tolist() == [-1, 1] and S[2].tolist() == [1, -2]
    assert net.log_km is not None and len(net.log_km) == 3 and np.all((-1 <= net.log_km) & (net.log_km <= 1))
    again = topology_network([{0: 1, 1: 1}, {2: 2}], [{2: 1}, {1: 1, 3: 1}], np.array([True, False, False, True]), p)
    assert np.array_equal(net.log_k, again.log_k) and np.array_equal(net.log_km, again.log_km)  # seeded


def test_e_coli_core_topology_from_cobra():
    top = read_sbml("cobra:textbook")
    assert (len(top.species), sum(top.boundary), len(top.reactions)) == (72, 20, 70)
    # 20 exchanges + biomass + ATPM; two reactions of substrate order > 4; CYTBD has 1/2 O2
    assert top.dropped == {"pseudo-reaction": 22, "substrate order outside [1, 4]": 2, "non-integer coefficient": 1}
    assert all(s.endswith("_e") for s, b in zip(top.species, top.boundary) if b)


def test_connected_subgraph_is_connected_and_of_the_size_asked():
    top = read_sbml("cobra:textbook", max_reactions=12)
    assert len(top.reactions) == 12 and top.dropped["outside the connected subgraph"] == 58
    touches = [set(r) | set(p) for r, p in zip(top.reactants, top.products)]
    reached, frontier = {0}, [0]
    while frontier:
        j = frontier.pop()
        for k, t in enumerate(touches):
            if k not in reached and t & touches[j]:
                reached.add(k)
                frontier.append(k)
    assert reached == set(range(12))


@pytest.mark.parametrize("text, expected", [
    ("<sbml>not closed", "model.xml: line"),
    (LEVEL2.replace('species="C" stoichiometry="2"/>', 'species="C"><stoichiometryMath><math '
                    'xmlns="http://www.w3.org/1998/Math/MathML"><cn>2</cn></math></stoichiometryMath></speciesReference>'),
     "reaction R2: species C has stoichiometryMath"),
    (LEVEL2.replace('<speciesReference species="B"/><speciesReference species="D"/>', '<speciesReference species="Z"/>'),
     "model.xml: reaction R2: species Z is not declared"),
])
def test_unreadable_or_unsupported_files_get_one_line(tmp_path, text, expected):
    with pytest.raises(SBMLError) as e:
        read_sbml(write(tmp_path, text))
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_missing_file_names_the_key(tmp_path):
    with pytest.raises(SBMLError, match=r"simulation.path=.*nope.xml: no such SBML file"):
        read_sbml(str(tmp_path / "nope.xml"))


def test_michaelis_menten_rate_and_flux_limit_by_hand():
    # A -> B with Vmax 10^-1, Km 10^0.5, at A = 2: v = 0.1 * 2 / (3.1623 + 2)
    net = hand_network([-1.0], [(0, 0, 1)], [(0, 0, -1), (1, 0, 1)], n_met=2)
    net = type(net)(**{**net.__dict__, "log_km": np.array([0.5])})
    f = Kinetics(net, dtype=torch.float64)
    v = 0.1 * 2.0 / (10**0.5 + 2.0)
    assert torch.allclose(f(torch.tensor([2.0, 1.0], dtype=torch.float64)), torch.tensor([-v, v], dtype=torch.float64))
    # a step of dt = 100 would take 100 v = 3.88 > 2 of A: the limit scales the reaction to use exactly what A has
    lim = Kinetics(net, dtype=torch.float64, flux_limit_dt=100.0)
    d = lim(torch.tensor([2.0, 1.0], dtype=torch.float64))
    assert torch.allclose(d * 100.0, torch.tensor([-2.0, 2.0], dtype=torch.float64))


def test_drive_signal_is_seeded_clipped_and_moves():
    c0 = np.array([1.0, 5.0, 9.0])
    a, b = drive_signal(3, 500, c0), drive_signal(3, 500, c0)
    assert np.array_equal(a, b) and not np.array_equal(a, drive_signal(4, 500, c0))
    assert np.all(a >= 0.05 * c0 - 1e-12) and np.all(a <= 4 * c0 + 1e-12)
    assert np.all(a.std(axis=0) > 0.2 * c0)  # it drives: the network cannot settle


def test_identifiability_follows_saturation():
    # one reaction A -> B, Km = 1: A far below Km (only Vmax/Km), around Km (both), far above (Vmax only)
    net = hand_network([-1.0], [(0, 0, 1)], [(0, 0, -1), (1, 0, 1)], n_met=2)
    net = type(net)(**{**net.__dict__, "log_km": np.array([0.0])})
    t = np.linspace(0, 1, 200)
    for level, vmax, km in ((0.001 * (1 + t), False, False), (0.2 + 5 * t, True, True), (1e4 * (1 + t), True, False)):
        c = np.stack([level, np.ones_like(t)], axis=1)
        v_ok, k_ok = michaelis_menten_identifiability(net, c)
        assert (bool(v_ok[0]), bool(k_ok[0])) == (vmax, km), level[:2]


@pytest.fixture(scope="module")
def ecoli_small(tmp_path_factory):
    p = ecoli(max_reactions=12, n_frames=200)
    ds = simulate(p)
    return ds


def test_dataset_roundtrip_keeps_kinetics_and_names(ecoli_small, tmp_path):
    save(ecoli_small, tmp_path / "d")
    back = load(tmp_path / "d")
    for key in ("log_km", "boundary", "log_k", "signed_edges"):
        assert np.array_equal(getattr(back.network, key), getattr(ecoli_small.network, key))
    assert back.network.species == ecoli_small.network.species and len(back.network.species) == 34
    b = back.network.boundary_mask
    assert np.array_equal(back.concentrations[:, b], ecoli_small.concentrations[:, b])
    assert np.all(back.dcdt[:, b] == 0)  # reactions do not change a boundary species; its course is the drive
    assert back.concentrations[:, b].std(axis=0).min() > 0.1
    assert back.summary["n_boundary"] == int(b.sum()) == 7 and back.summary["kinetics"] == "michaelis_menten"
    assert back.summary["sbml_dropped"]["outside the connected subgraph"] == 58


def test_model_with_true_parameters_is_the_simulator(ecoli_small):
    net = ecoli_small.network
    for km in ("given", "learned"):
        m = MichaelisMentenModel(net, km=km, c_ref=2.0).double()
        with torch.no_grad():
            if km == "learned":
                m.log_km.copy_(torch.as_tensor(net.log_km))
            sat_ref = 2.0 / (10 ** net.log_km + 2.0)
            corr = np.zeros(net.n_reactions)
            np.add.at(corr, net.substrate_edges[:, 1], net.substrate_edges[:, 2] * np.log10(sat_ref))
            m.log_r.copy_(torch.as_tensor(net.log_k + corr))
            m.node_mlp[-1].bias.zero_()
        assert np.allclose(m.log_k.detach().numpy(), net.log_k, atol=1e-12)
        c = torch.as_tensor(ecoli_small.concentrations[::20], dtype=torch.float64)
        assert torch.allclose(m(c).dcdt, Kinetics(net, dtype=torch.float64)(c), rtol=1e-6, atol=1e-12)  # Km held in float32


def _roadrunner_run(tmp_path: Path, n_frames: int = 40, dt: float = 0.01):
    """oscsim's dataset of a 12-reaction part of E. coli core and libRoadRunner's trajectory of its export."""
    import roadrunner
    ds = simulate(ecoli(max_reactions=12, n_frames=n_frames, delta_t=dt))
    f = export_network(tmp_path / "net.xml", ds.network, ds.concentrations, dt)
    rr = roadrunner.RoadRunner(str(f))
    rr.integrator.relative_tolerance, rr.integrator.absolute_tolerance = 1e-10, 1e-14  # the reference: tight
    rr.timeCourseSelections = ["time"] + [f"[{s}]" for s in ds.network.species]
    return ds, np.asarray(rr.simulate(0.0, n_frames * dt, n_frames + 1))[:, 1:]


def _relative(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|a - ref| relative to each species' largest value."""
    return np.abs(a - ref) / np.abs(ref).max(axis=0)


def test_exported_sbml_simulated_by_roadrunner_matches(tmp_path):
    # oscsim's explicit Euler (float32, dt 0.01, 40 frames) against libRoadRunner's CVODE on the exported file
    ds, rr = _roadrunner_run(tmp_path)
    rel, b = _relative(ds.concentrations, rr), ds.network.boundary_mask
    assert rel[:, ~b].max() < 1e-3  # the stated tolerance (README "Real networks")
    assert rel[:, b].max() < 1e-6  # the drive is written exactly (linear between frames)
    assert rel[:, ~b].max() > 1e-6  # (and the comparison is not vacuous: Euler's error is there to see)

    # The difference is Euler's error: refining oscsim's step (float64, the drive interpolated between frames as
    # the file says) takes it to zero.
    net, idx = ds.network, torch.as_tensor(np.flatnonzero(b))
    drive = torch.as_tensor(ds.concentrations[:, b], dtype=torch.float64)
    c0 = torch.as_tensor(ds.concentrations[0], dtype=torch.float64)
    errors = []
    for r in (1, 4, 16):  # steps per frame
        w = torch.linspace(0, 1, r + 1, dtype=torch.float64)[:-1, None]
        course = torch.cat([(drive[:-1, None] * (1 - w) + drive[1:, None] * w).reshape(-1, drive.shape[1]), drive[-1:]])
        c, _ = integrate(Kinetics(net, dtype=torch.float64), c0, 40 * r, 0.01 / r, forced=(idx, course))
        errors.append(_relative(c.numpy()[::r], rr)[:, ~b].max())
    assert errors[1] < 0.5 * errors[0] and errors[2] < 0.5 * errors[1] and errors[2] < 2e-5, errors


def test_learned_model_export_reads_back(ecoli_small, tmp_path):
    net = ecoli_small.network
    learned_k, learned_km = net.log_k + 0.1, net.log_km - 0.2
    f = export_network(tmp_path / "learned.xml", net, ecoli_small.concentrations, 0.1, log_k=learned_k,
                       log_km=learned_km)
    top = read_sbml(str(f))
    assert len(top.reactions) == net.n_reactions and sum(top.boundary) == int(net.boundary_mask.sum())
    import libsbml

    model = libsbml.readSBMLFromFile(str(f)).getModel()
    j, e = 3, int(np.flatnonzero(net.substrate_edges[:, 1] == 3)[0])
    rid = model.getReaction(j).getId()
    assert model.getParameter(f"Vmax_{rid}").getValue() == pytest.approx(10 ** learned_k[j])
    met = model.getSpecies(int(net.substrate_edges[e, 0])).getId()
    assert model.getParameter(f"Km_{met}_{rid}").getValue() == pytest.approx(10 ** learned_km[e])


def test_compose_e_coli_core(compose_config):
    from oscsim.config import simulation_params

    p = simulation_params(compose_config("simulation=e_coli_core", "model=michaelis_menten"))
    assert (p.n_metabolites, p.n_reactions, p.kinetics, p.network) == (72, 70, "michaelis_menten", "sbml")
    assert p.source.startswith("cobra:textbook#")


SMALL = ["simulation=e_coli_core", "simulation.max_reactions=12", "simulation.n_frames=300", "model=michaelis_menten",
         "progress=false", "compile=false", "threads=1", "tensorboard=false"]


def test_trains_michaelis_menten_and_exports_what_it_learned(compose_config, tmp_path):
    import libsbml

    from oscsim import train as T

    cfg = compose_config(*SMALL, "optimizer=lbfgs", "lbfgs_steps=40", "export_sbml=learned.xml", "plots=true")
    m = T.train(cfg, tmp_path / "run")
    # 12 reactions: every Vmax structurally identifiable; with Km learned, those identifiable together with Km
    assert m["Vmax_R2_identifiable_with_Km"] > 0.95 and m["n_Vmax_identifiable_with_Km"] >= 5, m
    assert m["Km_R2_identifiable"] > 0.9 and m["test_R2"] > 0.99, m
    assert (tmp_path / "run" / "figures" / "Km.png").stat().st_size > 10_000
    log_k = np.load(tmp_path / "run" / "log_k.npy")
    model = libsbml.readSBMLFromFile(str(tmp_path / "run" / "learned.xml")).getModel()
    assert model.getNumReactions() == 12
    rid = model.getReaction(0).getId()
    assert model.getParameter(f"Vmax_{rid}").getValue() == pytest.approx(10 ** log_k[0], rel=1e-6)


def test_km_given_recovers_vmax(compose_config, tmp_path):
    from oscsim import train as T

    m = T.train(compose_config(*SMALL, "model.km=given", "optimizer=lbfgs", "lbfgs_steps=30", "plots=false"),
                tmp_path / "run")
    assert m["rate_constants_R2_identifiable"] > 0.999, m


@pytest.mark.parametrize("overrides, message", [
    (["model=learned_form", "export_sbml=x.xml"], "export_sbml=x.xml: only a model with a closed-form rate law"),
    (["recurrent_training=true", "time_step=4"], "recurrent_training: its rollouts do not follow driven boundary species"),
    (["optimizer=lbfgs", "recurrent_training=true", "time_step=4", "simulation.drive=false"],
     "optimizer=lbfgs: one model fitting exact dc/dt only"),
    (["optimizer=newton"], "optimizer=newton: must be adam or lbfgs"),
    (["simulation.kinetics=hill"], "simulation.kinetics=hill: must be mass_action or michaelis_menten"),
])
def test_bad_settings_get_one_line(compose_config, tmp_path, overrides, message):
    from oscsim import train as T
    from oscsim.params import ConfigError

    with pytest.raises(ConfigError) as e:
        T.train_many([compose_config(*SMALL, *overrides)], [tmp_path / "run"])
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_lbfgs_trains_one_model_at_a_time(compose_config, tmp_path):
    from oscsim import train as T
    from oscsim.params import ConfigError

    cfgs = [compose_config(*SMALL, "optimizer=lbfgs", f"seed={s}") for s in (1, 2)]
    with pytest.raises(ConfigError, match="optimizer=lbfgs: one model fitting exact dc/dt only"):
        T.train_many(cfgs, [tmp_path / "a", tmp_path / "b"])


def test_simulate_command_reads_a_users_sbml_file(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    f = write(tmp_path, LEVEL2)
    base = [sys.executable, "-m", "oscsim.simulate", "simulation=sbml", f"data_dir={tmp_path / 'data'}", "plots=false",
            "progress=false", "simulation.kinetics=mass_action", "simulation.n_frames=50"]
    r = subprocess.run([*base, f"simulation.path={f}", f"export_sbml={tmp_path / 'out.xml'}"], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"n_metabolites": 4, "n_reactions": 2' in r.stdout
    out = read_sbml(str(tmp_path / "out.xml"))  # what was written reads back as the same network
    assert out.species == ("A", "B", "C", "D") and out.boundary == (True, False, False, True)
    assert out.reactants == ({0: 1, 1: 1}, {2: 2})
    bad = write(tmp_path, "<sbml>", "bad.xml")
    for path, line in ((bad, f"{bad}: line"), (str(tmp_path / "none.xml"), "no such SBML file")):
        r = subprocess.run([*base, f"simulation.path={path}"], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and line in r.stderr, r.stderr[-2000:]


def test_mass_action_on_a_real_topology_and_an_undriven_one():
    ds = simulate(ecoli(max_reactions=20, n_frames=100, kinetics="mass_action"))
    assert ds.network.log_km is None and ds.network.kinetics == "mass_action"
    assert np.isfinite(ds.concentrations).all() and ds.summary["activity_rank"] >= 2
    held = simulate(ecoli(max_reactions=20, n_frames=100, drive=False))
    b = held.network.boundary_mask
    assert b.sum() > 0 and np.all(held.concentrations[:, b] == held.concentrations[0, b])  # held at c0
    assert np.array_equal(held.network.log_km, simulate(ecoli(max_reactions=20, n_frames=100)).network.log_km)


def test_export_keeps_a_catalyst_on_both_sides(tmp_path):
    # A + E -> B + E: E's net change is 0 (no entry in S), but the file must still list it as a product
    p = regime("sbml", path="x", n_metabolites=3, n_reactions=1, n_metabolite_types=1)
    net = topology_network([{0: 1, 2: 1}], [{1: 1, 2: 1}], np.zeros(3, bool), p, ("A", "B", "E"), ("R",))
    assert net.S[:, 0].tolist() == [-1, 1, 0]
    top = read_sbml(str(export_network(tmp_path / "cat.xml", net, np.ones((2, 3)), 0.1)))
    assert top.reactants == ({0: 1, 2: 1},) and top.products == ({1: 1, 2: 1},)


def test_observed_windows_follow_the_drive(ecoli_small):
    # Rolled with the true kinetics from observed states, windows reproduce the simulator's trajectory exactly
    # only if the driven boundary species follow their observations: without, they would stay at the start.
    from oscsim import losses as L
    from oscsim.models.base import Output

    net, c = ecoli_small.network, torch.as_tensor(ecoli_small.concentrations, dtype=torch.float64)
    f = Kinetics(net, dtype=torch.float64)
    step = lambda x, q=None: Output(f(x), torch.zeros_like(x), None)  # noqa: E731
    forced = torch.as_tensor(np.flatnonzero(net.boundary_mask))
    starts = torch.tensor([0, 37, 120])
    target = c[starts[None] + torch.arange(1, 6)[:, None]]  # (window 5, B, n)
    states, _ = L.roll_windows(step, c[starts], 5, 1, ecoli_small.params.delta_t, None, forced, target[..., forced])
    assert torch.allclose(states, target, rtol=1e-5, atol=1e-6)  # float32 data against a float64 rollout
    free, _ = L.roll_windows(step, c[starts], 5, 1, ecoli_small.params.delta_t)
    assert (free - target).abs().max() > 100 * (states - target).abs().max()
