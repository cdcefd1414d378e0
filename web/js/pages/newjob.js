// web/js/pages/newjob.js — #/jobs/new[?dataset=ID]: create a circles dataset
// (or pick an existing dataset) and submit a training job.
//
// The fields start at the seed experiment's values (1600 circles in 200-D,
// p_active 0.002, a ReLU SAE 12800 wide in groups of 2, the API's training
// defaults); every one can be overridden, and an emptied field is left out so
// the daemon's default applies. Input names are the JSON paths of the request
// body ("sae.n_latents", "params.radius.0"), so the daemon's per-field
// validation errors land beside the field they name. Picking an architecture
// shows only its fields (k and AuxK for topk/batchtopk, bandwidth for jumprelu,
// ...), each with what it means for that arch; hidden fields are not sent.
import { post, list, isAbort } from '../api.js';
import { h, fill } from '../dom.js';
import { pageHead, errorBox } from '../ui.js';

const ARCHS = ['relu', 'gated', 'topk', 'batchtopk', 'jumprelu'];
const DECAYS = ['linear', 'cosine', 'none'];

/* Field specs: [name, label, default, {kind: 'int'|'float'|'text'|select options, hint}] */
const DATASET_FIELDS = [
  ['name', 'Name', 'c1600', { kind: 'text' }],
  ['params.n_circles', 'Circles', 1600, { kind: 'int' }],
  ['params.dim', 'Dimension', 200, { kind: 'int' }],
  ['params.p_active', 'P(active) per circle', 0.002, { kind: 'float' }],
  ['params.radius.0', 'Radius min', 1.0, { kind: 'float' }],
  ['params.radius.1', 'Radius max', 1.0, { kind: 'float' }],
  ['params.seed', 'Seed', 1, { kind: 'int' }],
];
/* SAE fields; `archs` lists the architectures a field applies to (absent: all), `hints`
 * says per arch what it means there. Fields of other archs are hidden and left out of the body. */
const PENALISED = ['relu', 'gated', 'jumprelu'];
const TOPK = ['topk', 'batchtopk'];
const SAE_FIELDS = [
  ['sae.arch', 'Architecture', 'relu', { kind: ARCHS, hints: {
    relu: 'ReLU, L1-of-L2 group penalty', gated: 'gate decides which groups fire, magnitude path their size',
    jumprelu: 'a group fires when its norm passes a learnt threshold', topk: 'keeps the k largest groups per row',
    batchtopk: 'keeps the k·batch largest groups per batch; a learnt threshold at inference' } }],
  ['sae.n_latents', 'Latents (width)', 12800, { kind: 'int' }],
  ['sae.group_size', 'Group size', 2, { kind: 'int', hint: '1 = ordinary SAE' }],
  ['sae.sparsity_coef', 'Sparsity coefficient', 0.01, { kind: 'float', archs: PENALISED, hints: {
    relu: 'weight of Σ groups ‖z_g‖₂', gated: 'weight of Σ groups ‖ReLU(gate_g)‖₂',
    jumprelu: 'weight of the L0 over groups' } }],
  ['sae.k', 'k (groups kept)', 32, { kind: 'int', archs: TOPK, hint: 'required; 1 … latents / group size' }],
  ['sae.aux_k_coef', 'AuxK coefficient', 0.03125, { kind: 'float', archs: TOPK, hint: 'dead-latent auxiliary loss; 0 = off' }],
  ['sae.aux_k', 'AuxK groups', '', { kind: 'int', archs: TOPK, hint: 'empty = auto (dim / 2 latents)' }],
  ['sae.bandwidth', 'Bandwidth', 0.001, { kind: 'float', archs: ['jumprelu'], hint: 'width of the threshold’s pseudo-gradient kernel; > 0' }],
  ['sae.threshold', 'Threshold', 0.0, { kind: 'float', archs: ['relu', 'jumprelu'], hints: {
    relu: 'zero groups whose norm is below it', jumprelu: 'initial threshold; 0 = 0.001' } }],
  ['sae.orth_coef', 'Orthogonality coefficient', 0.0, { kind: 'float' }],
];
const TRAIN_FIELDS = [
  ['train.steps', 'Steps', 20000, { kind: 'int' }],
  ['train.batch_size', 'Batch size', 4096, { kind: 'int' }],
  ['train.lr', 'Learning rate', 0.001, { kind: 'float' }],
  ['train.lr_warmup_steps', 'LR warm-up steps', 1000, { kind: 'int' }],
  ['train.lr_decay', 'LR decay', 'linear', { kind: DECAYS }],
  ['train.sparsity_warmup_steps', 'Sparsity warm-up steps', 1000, { kind: 'int' }],
  ['train.seed', 'Seed', 0, { kind: 'int' }],
  ['train.checkpoint_every', 'Checkpoint every', 1000, { kind: 'int' }],
  ['train.eval_every', 'Evaluate every', 100, { kind: 'int', hint: 'steps between curve points' }],
];
/* A preset for trying the dashboard: finishes in seconds. */
const QUICK = {
  name: 'c20', 'params.n_circles': 20, 'params.dim': 16, 'params.p_active': 0.05, 'sae.n_latents': 160,
  'train.steps': 300, 'train.batch_size': 256, 'train.lr_warmup_steps': 30, 'train.sparsity_warmup_steps': 30,
  'train.eval_every': 10,
};

function field([name, label, value, { kind, hint, archs }]) {
  const id = `f-${name.replace(/\./g, '-')}`;
  const input = Array.isArray(kind)
    ? h('select', { id, name }, kind.map((o) => h('option', { value: o, selected: o === value }, o)))
    : h('input', { id, name, type: kind === 'text' ? 'text' : 'number', step: kind === 'int' ? 1 : 'any',
      value: String(value), 'data-kind': kind, 'data-default': String(value) });
  return h('div', { class: 'field', 'data-archs': archs ? archs.join(' ') : null }, h('label', { for: id }, label), input,
    h('div', { class: 'hint' }, hint ?? ''), h('div', { class: 'err' }));
}

/* Shows the SAE fields that apply to arch, with their hint for it. */
function showArch(scope, arch) {
  for (const [name, , , { archs, hints, hint }] of SAE_FIELDS) {
    const f = scope.querySelector(`[name="${name}"]`)?.closest('.field');
    if (!f) continue;
    f.hidden = archs ? !archs.includes(arch) : false;
    if (hints) fill(f.querySelector('.hint'), hints[arch] ?? hint ?? '');
  }
}

/* Sets obj at a dotted path; numeric segments make arrays. */
function setPath(obj, path, v) {
  const segs = path.split('.');
  let o = obj;
  segs.slice(0, -1).forEach((s, i) => {
    if (o[s] == null) o[s] = /^\d+$/.test(segs[i + 1]) ? [] : {};
    o = o[s];
  });
  o[segs[segs.length - 1]] = v;
}

/* The JSON body from the inputs inside scope; throws a field error for unreadable numbers. */
function collect(scope) {
  const out = {};
  for (const el of scope.querySelectorAll('input, select')) {
    if (!el.name || el.closest('.field')?.hidden) continue;
    if (el.validity?.badInput) throw Object.assign(new Error('not a number'), { errors: [{ field: el.name, message: 'not a number' }] });
    if (el.value.trim() === '') continue;
    const kind = el.dataset.kind;
    setPath(out, el.name, kind === 'int' || kind === 'float' ? Number(el.value) : el.value);
  }
  return out;
}

function clearErrors(form) {
  for (const f of form.querySelectorAll('.field.invalid')) { f.classList.remove('invalid'); fill(f.querySelector('.err')); }
}

/* Marks the fields a problem names; returns the messages that fit no field. */
function markErrors(scope, errors) {
  const rest = [];
  for (const { field: name, message } of errors) {
    const input = [...scope.querySelectorAll('[name]')].find((el) => el.name === name || el.name.startsWith(`${name}.`));
    const f = input?.closest('.field');
    if (!f) { rest.push(`${name}: ${message}`); continue; }
    f.classList.add('invalid');
    fill(f.querySelector('.err'), message);
  }
  return rest;
}

export async function mount(root, { query, signal, navigate }) {
  document.title = 'New job · saed';
  const datasets = (await list('/datasets', signal)).sort((a, b) => b.id - a.id);
  const alertEl = h('div', {});
  const select = h('select', { id: 'f-dataset', name: 'dataset' },
    h('option', { value: 'new' }, 'New circles dataset…'),
    datasets.map((d) => h('option', { value: d.id }, `#${d.id} ${d.name} (${d.kind}, ${d.dim}-D)`)));
  select.value = query.dataset && datasets.some((d) => String(d.id) === query.dataset) ? query.dataset
    : datasets.length ? String(datasets[0].id) : 'new';
  const circles = h('div', { class: 'fields', id: 'circles-fields' }, DATASET_FIELDS.map(field));
  const showCircles = () => { circles.hidden = select.value !== 'new'; };
  select.addEventListener('change', showCircles);
  showCircles();

  const jobScope = h('div', {},
    h('fieldset', {}, h('legend', {}, 'SAE'), h('div', { class: 'fields' }, SAE_FIELDS.map(field))),
    h('fieldset', {}, h('legend', {}, 'Training'), h('div', { class: 'fields' }, TRAIN_FIELDS.map(field))));
  const archSelect = jobScope.querySelector('[name="sae.arch"]');
  archSelect.addEventListener('change', () => showArch(jobScope, archSelect.value));
  showArch(jobScope, archSelect.value);
  const submitBtn = h('button', { type: 'submit', class: 'primary', id: 'submit' }, 'Create and start training');
  const status = h('span', { class: 'muted' });
  const form = h('form', { id: 'new-job', novalidate: true },
    h('fieldset', {}, h('legend', {}, 'Dataset'),
      h('div', { class: 'fields' }, h('div', { class: 'field' }, h('label', { for: 'f-dataset' }, 'Train on'), select, h('div', { class: 'err' }))),
      circles),
    jobScope,
    h('div', { class: 'form-actions' }, submitBtn,
      h('button', { type: 'button', id: 'preset-seed', onclick: () => preset(null) }, 'Seed experiment defaults'),
      h('button', { type: 'button', id: 'preset-quick', onclick: () => preset(QUICK) }, 'Quick demo (seconds)'),
      status));

  function preset(values) {
    for (const el of form.querySelectorAll('[data-default], select[name^="sae."], select[name^="train."]')) {
      const def = el.dataset.default ?? el.querySelector('option[selected]')?.value ?? el.options?.[0]?.value;
      el.value = values && el.name in values ? String(values[el.name]) : def;
    }
    showArch(jobScope, archSelect.value);
    clearErrors(form);
  }

  async function createDataset() {
    const body = { kind: 'circles', ...collect(circles) };
    try {
      const ds = await post('/datasets', body, signal);
      select.append(h('option', { value: ds.id }, `#${ds.id} ${ds.name} (${ds.kind}, ${ds.dim}-D)`));
      select.value = String(ds.id);
      showCircles();
      return ds.id;
    } catch (e) {
      e.scope = circles;
      throw e;
    }
  }

  async function submit(ev) {
    ev.preventDefault();
    clearErrors(form);
    fill(alertEl);
    submitBtn.disabled = true;
    fill(status, 'Submitting…');
    try {
      const dataset = select.value === 'new' ? await createDataset() : Number(select.value);
      const job = await post('/jobs', { type: 'train', dataset, ...collect(jobScope) }, signal);
      navigate(`#/jobs/${job.id}`);
    } catch (e) {
      if (isAbort(e)) return;
      const rest = markErrors(e.scope ?? jobScope, e.errors ?? []);
      fill(alertEl, errorBox(rest.length || !e.errors?.length ? e : new Error('Please fix the marked fields.')));
      submitBtn.disabled = false;
      fill(status);
    }
  }
  form.addEventListener('submit', submit);

  root.append(pageHead('New training job'), alertEl, form);
}
