// Cursor polling: ask again soon while things change, back off (to 1.5 s at most, so new points
// show within 2 s of being written) while nothing does, stop
// when the caller says it is done. Pauses while the tab is hidden (no wasted requests).

/**
 * @param {() => Promise<{changed: boolean, done: boolean}>} tick one poll
 * @param {{min?: number, max?: number, factor?: number, onError?: (e: Error) => void}} options
 * @returns {{stop: () => void, kick: () => void}}
 */
export function poll(tick, { min = 1000, max = 1500, factor = 1.5, onError } = {}) {
  let delay = min;
  let timer = null;
  let stopped = false;
  let running = false;

  async function run() {
    timer = null;
    if (stopped) return;
    if (document.hidden) return; // resumed by visibilitychange
    running = true;
    try {
      const { changed, done } = await tick();
      if (done) {
        stop();
        return;
      }
      delay = changed ? min : Math.min(max, delay * factor);
    } catch (err) {
      if (onError) onError(err);
      delay = Math.min(max * 4, delay * 2); // a failing server is not hammered
    } finally {
      running = false;
    }
    schedule();
  }

  function schedule() {
    if (!stopped && timer === null && !running) timer = setTimeout(run, delay);
  }

  function onVisibility() {
    if (!document.hidden && timer === null && !running && !stopped) {
      delay = min;
      run();
    }
  }

  function stop() {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    timer = null;
    document.removeEventListener("visibilitychange", onVisibility);
  }

  document.addEventListener("visibilitychange", onVisibility);
  schedule();
  return {
    stop,
    // ask now (after a user action that is likely to change things)
    kick() {
      if (stopped) return;
      delay = min;
      if (timer !== null) {
        clearTimeout(timer);
        timer = null;
      }
      if (!running) run();
    },
  };
}
