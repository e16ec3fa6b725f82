// Admin actions: create and stop experiments, enrol devices, share read-only access. The coordinator checks
// the admin key on every call; this page only hides what an observer key cannot do.
import { api } from './api.js';
import { $, el } from './format.js';

const NUMBER_FIELDS = ['rounds', 'fraction', 'minClients', 'roundDeadlineSeconds', 'localSteps', 'microBatches', 'localLearningRate', 'candidateSeeds', 'serverLearningRate'];
const DEFAULT_FIELDS = ['minClients', 'roundDeadlineSeconds', 'localSteps', 'microBatches', 'localLearningRate', 'candidateSeeds', 'serverLearningRate'];

export function setupAdmin({ selectedId, experiments, created, stopped }) {
  let algorithms = [];
  let artifacts = [];
  const dialog = $('create-dialog');
  const form = $('create-form');

  $('new-experiment').addEventListener('click', async () => {
    $('create-error').textContent = '';
    try {
      [algorithms, artifacts] = await Promise.all([api('/api/algorithms'), api('/api/artifacts')]);
    } catch (e) {
      $('create-error').textContent = e.message;
    }
    $('create-artifact').replaceChildren(...(artifacts.length
      ? artifacts.map((a) => el('option', { value: a.folder, text: `${a.folder} (${a.family}, ${a.parameters.toLocaleString('en')} parameters)` }))
      : [el('option', { value: '', text: 'no artifact package in the coordinator\'s artifacts directory' })]));
    const algorithm = $('create-algorithm');
    algorithm.replaceChildren(...algorithms.map((a) => el('option', { value: a.name, text: a.name })));
    fillDefaults(algorithms[0]);
    dialog.showModal();
  });
  $('create-algorithm').addEventListener('change', (e) => fillDefaults(algorithms.find((a) => a.name === e.target.value)));
  $('create-cancel').addEventListener('click', () => dialog.close());
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { name: data.get('name'), algorithm: data.get('algorithm'), artifact: data.get('artifact') };
    for (const field of NUMBER_FIELDS) body[field] = Number(data.get(field));
    const submit = $('create-submit');
    submit.disabled = true;
    try {
      const experiment = await api('/api/experiments', { method: 'POST', body });
      dialog.close();
      await created(experiment.id);
    } catch (e) {
      $('create-error').textContent = e.message;
    } finally {
      submit.disabled = false;
    }
  });

  $('stop-experiment').addEventListener('click', async () => {
    const id = selectedId();
    const name = experiments().find((e) => e.id === id)?.name ?? id;
    if (!id || !window.confirm(`Stop experiment ${name}? An open round is abandoned; this cannot be undone.`)) return;
    try {
      await api(`/api/experiments/${encodeURIComponent(id)}/stop`, { method: 'POST' });
    } catch (e) {
      window.alert(`Could not stop ${name}: ${e.message}`);
    }
    await stopped();
  });

  $('enrol-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('enrol-error').textContent = '';
    const label = $('enrol-label').value.trim();
    try {
      const enrolment = await api('/api/enrolments', { method: 'POST', body: { label: label || null, validMinutes: Number($('enrol-minutes').value) } });
      $('enrol-command').textContent = await edgeCommand(enrolment.token, label, selectedId());
      $('enrol-result').hidden = false;
      $('enrol-copied').textContent = '';
    } catch (e) {
      $('enrol-error').textContent = e.message;
    }
  });
  $('enrol-copy').addEventListener('click', () => copy($('enrol-command'), $('enrol-copied')));

  $('observer-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('observer-error').textContent = '';
    try {
      const link = await api('/api/sign-in-links', {
        method: 'POST',
        body: { role: $('observer-role').value, label: $('observer-label').value.trim() || null, validMinutes: Number($('observer-minutes').value) },
      });
      $('observer-link').textContent = `${location.origin}${link.path}`;
      $('observer-result').hidden = false;
      $('observer-copied').textContent = '';
    } catch (e) {
      $('observer-error').textContent = e.message;
    }
  });
  $('observer-copy').addEventListener('click', () => copy($('observer-link'), $('observer-copied')));
}

function fillDefaults(defaults) {
  if (!defaults) return;
  for (const field of DEFAULT_FIELDS) $(`create-${field}`).value = defaults[field];
}

/** The command a device runs to enrol and take part; the artifact package downloads by fingerprint when missing. */
async function edgeCommand(token, label, experimentId) {
  let artifacts = 'artifacts/MODEL';
  if (experimentId) {
    try {
      const experiment = await api(`/api/experiments/${encodeURIComponent(experimentId)}`);
      const artifact = await api(`/api/artifacts/${experiment.artifactFingerprint}`);
      artifacts = `artifacts/${artifact.folder}`;
    } catch {
      // the placeholder stays
    }
  }
  const name = (label || 'my-device').replace(/[^A-Za-z0-9._-]+/g, '-');
  const parts = ['ferret-edge', '--coordinator', location.origin, '--enrolment-token', token, '--name', name, '--token-file', `${name}.token`];
  if (experimentId) parts.push('--experiment', experimentId);
  parts.push('--artifacts', artifacts, '--data', 'my-data.jsonl');
  return parts.join(' ');
}

async function copy(source, status) {
  try {
    await navigator.clipboard.writeText(source.textContent);
    status.textContent = 'Copied.';
  } catch {
    // No clipboard here (not a secure context): select the text for Ctrl+C instead.
    getSelection().selectAllChildren(source);
    status.textContent = 'Selected: press Ctrl+C to copy.';
  }
}
