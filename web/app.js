// The live page: microphone -> WebSocket (Deepgram's live protocol on /v1/listen) -> transcript.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { ws: null, context: null, media: null, recorder: null };

// The token lives in this tab's sessionStorage unless "remember" is ticked: localStorage outlives the tab and
// is readable by any script on this origin for as long as the browser keeps it.
$('remember').checked = localStorage.getItem('stt-token') !== null;
$('token').value = sessionStorage.getItem('stt-token') || localStorage.getItem('stt-token') || '';
$('remember').addEventListener('change', () => { if (!$('remember').checked) localStorage.removeItem('stt-token'); });
$('mic').addEventListener('click', () => (state.ws ? stop() : start()));
$('upload-form').addEventListener('submit', upload);

function setStatus(text, kind = '') {
  $('status').textContent = text;
  $('status').className = kind;
}

function token() {
  const value = $('token').value.trim();
  sessionStorage.setItem('stt-token', value);
  if ($('remember').checked) localStorage.setItem('stt-token', value);
  else localStorage.removeItem('stt-token');
  return value;
}

async function start() {
  const key = token();
  if (!key) { setStatus('enter a token first', 'error'); return; }
  setStatus('opening the microphone…');
  try {
    state.media = await navigator.mediaDevices.getUserMedia(
      { audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
  } catch (err) {
    setStatus(`microphone unavailable: ${err.message}`, 'error');
    return;
  }
  const capture = await openCapture();  // AudioWorklet (PCM) first, MediaRecorder (WebM/Opus) otherwise
  const params = new URLSearchParams({ interim_results: 'true', punctuate: 'true', vad_events: 'true',
                                       utterance_end_ms: '1000' });
  if (capture.rate) {
    params.set('encoding', 'linear16');
    params.set('sample_rate', String(capture.rate));
    params.set('channels', '1');
  }
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/v1/listen?${params}`, ['token', key]);
  state.ws = ws;
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => {
    setStatus('listening', 'live');
    $('mic').textContent = '■ Stop';
    $('mic').setAttribute('aria-pressed', 'true');
    capture.begin((data) => { if (ws.readyState === WebSocket.OPEN) ws.send(data); });
  };
  ws.onmessage = (event) => show(JSON.parse(event.data));
  ws.onclose = (event) => {
    const opened = $('mic').getAttribute('aria-pressed') === 'true';
    if (!opened) setStatus('connection refused: check the token', 'error');
    else setStatus(event.code === 1000 ? 'stopped' : `closed: ${event.reason || event.code}`,
                   event.code === 1000 ? '' : 'error');
    release();
  };
}

async function openCapture() {
  if (window.AudioWorkletNode) {
    try {
      let context;
      try { context = new AudioContext({ sampleRate: 16000 }); } catch { context = new AudioContext(); }
      await context.audioWorklet.addModule('/web/capture-worklet.js');
      const source = context.createMediaStreamSource(state.media);
      const node = new AudioWorkletNode(context, 'pcm16-capture');
      const mute = context.createGain();
      mute.gain.value = 0;  // keeps the graph pulling samples without playing the microphone back
      source.connect(node).connect(mute).connect(context.destination);
      await context.resume();  // a context made after an await may start suspended (autoplay policy)
      state.context = context;
      return { rate: context.sampleRate, begin: (send) => { node.port.onmessage = (e) => send(e.data); } };
    } catch (err) {
      console.warn('AudioWorklet capture failed, falling back to MediaRecorder', err);
    }
  }
  return {
    rate: null,
    begin: (send) => {
      state.recorder = new MediaRecorder(state.media, { mimeType: 'audio/webm;codecs=opus' });
      state.recorder.ondataavailable = (e) => { if (e.data.size) e.data.arrayBuffer().then(send); };
      state.recorder.start(250);
    },
  };
}

function stop() {
  setStatus('finishing…');
  if (state.recorder && state.recorder.state !== 'inactive') state.recorder.stop();
  if (state.context) state.context.close();
  state.context = null;
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ type: 'CloseStream' }));
}

function release() {
  if (state.media) state.media.getTracks().forEach((t) => t.stop());
  if (state.context) state.context.close();
  Object.assign(state, { ws: null, context: null, media: null, recorder: null });
  $('mic').textContent = '🎤 Start';
  $('mic').setAttribute('aria-pressed', 'false');
}

function show(message) {
  if (message.type === 'Results') {
    const text = message.channel.alternatives[0].transcript;
    if (message.is_final) {
      if (text) $('finals').textContent += ($('finals').textContent ? ' ' : '') + text;
      $('interim').textContent = '';
    } else {
      $('interim').textContent = ($('finals').textContent ? ' ' : '') + text;
    }
  } else if (message.type === 'SpeechStarted') {
    setStatus('hearing speech', 'live');
  } else if (message.type === 'UtteranceEnd') {
    setStatus('listening', 'live');
  } else if (message.type === 'Metadata') {
    setStatus(`done: ${message.duration.toFixed(1)} s of audio`);
  }
}

// Uploads go through the jobs API: the upload's progress (XMLHttpRequest reports it, fetch does not), then the
// transcription's (polling the job), then the text and download buttons. Without jobs on the server, /stt.
const POLL_MS = 1000;

function showJob(stage, fraction) {
  $('job').hidden = false;
  $('job-stage').textContent = stage;
  if (fraction === null) $('job-progress').removeAttribute('value');
  else $('job-progress').value = fraction;
}

function send(method, url, body, onUpload) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.setRequestHeader('Authorization', `Token ${token()}`);
    if (onUpload) xhr.upload.onprogress = (e) => { if (e.lengthComputable) onUpload(e.loaded / e.total); };
    xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText,
                                 type: xhr.getResponseHeader('Content-Type') || '' });
    xhr.onerror = () => reject(new Error('network error'));
    xhr.send(body);
  });
}

async function upload(event) {
  event.preventDefault();
  const file = $('file').files[0];
  if (!file) return;
  $('downloads').hidden = true;
  $('upload-result').textContent = '';
  const form = new FormData();
  form.append('file', file);
  showJob('uploading 0 %', 0);
  const sent = await send('POST', '/v1/jobs', form, (f) => showJob(`uploading ${Math.round(f * 100)} %`, f));
  const body = JSON.parse(sent.text || '{}');
  if (sent.status === 503 && /not enabled/.test(body.message || '')) return uploadDirect(form);
  if (sent.status !== 202) { fail(sent.status, body.message); return; }
  await follow(body.id);
}

async function follow(id) {
  for (;;) {
    const got = await send('GET', `/v1/jobs/${id}`);
    const job = JSON.parse(got.text || '{}');
    if (got.status !== 200) { fail(got.status, job.message); return; }
    const { done_seconds: done, total_seconds: total } = job.progress;
    if (job.status === 'completed') break;
    if (job.status === 'failed' || job.status === 'cancelled') {
      fail(job.status, job.error ? job.error.message : job.status);
      return;
    }
    if (job.status === 'queued') showJob('queued', null);
    else showJob(total ? `transcribing ${Math.round((100 * done) / total)} % (${done.toFixed(0)} of ${total.toFixed(0)} s)`
                       : 'transcribing', total ? done / total : null);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const result = await send('GET', `/v1/jobs/${id}/result?output=json`);
  showJob('done', 1);
  $('upload-result').textContent = JSON.parse(result.text).text;
  for (const button of $('downloads').querySelectorAll('button')) {
    button.onclick = () => download(id, button.dataset.output, button.dataset.ext);
  }
  $('downloads').hidden = false;
}

async function download(id, output, ext) {
  // A link cannot carry the Authorization header: fetch the result, then save it from a blob URL.
  const got = await send('GET', `/v1/jobs/${id}/result?output=${output}`);
  if (got.status !== 200) { fail(got.status, JSON.parse(got.text || '{}').message); return; }
  const name = ($('file').files[0] ? $('file').files[0].name.replace(/\.[^.]*$/, '') : 'transcript') + `.${ext}`;
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([got.text], { type: got.type }));
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function fail(status, message) {
  showJob('failed', 0);
  $('upload-result').textContent = `error ${status}: ${message}`;
}

async function uploadDirect(form) {
  showJob('transcribing', null);
  const response = await fetch('/stt', { method: 'POST', headers: { Authorization: `Token ${token()}` }, body: form });
  const body = await response.json();
  showJob(response.ok ? 'done' : 'failed', response.ok ? 1 : 0);
  $('upload-result').textContent = response.ok ? body.text : `error ${response.status}: ${body.message}`;
}
