// The websocket lives beside the page, wherever the page was reached (directly, or through
// `ssh -L` on another port): set before textual.js connects on window load.
(function () {
  var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  var terminal = document.getElementById("terminal");
  terminal.dataset.sessionWebsocketUrl = scheme + "//" + window.location.host + "/ws";
  // Keys go to the console from the start, without a click on it first — once the socket is
  // open (textual.js marks the body "-loaded"): focusing earlier sends on a connecting socket.
  new MutationObserver(function (changes, observer) {
    if (document.body.classList.contains("-loaded") && window.gpuconsoleTerminal) {
      observer.disconnect();
      window.gpuconsoleTerminal.focus();
    }
  }).observe(document.body, { attributes: true, attributeFilter: ["class"] });
  document.getElementById("restart").addEventListener("click", function () {
    window.location.reload();
  });
})();
