// Case page: a hand-off form offers only the agents who work the queue chosen in it.
// (The form and the service refuse anyone else; this keeps the list short and honest.)
(function () {
  function narrow(queueSelect) {
    var form = queueSelect.form;
    var agents = form && form.querySelector('select[name$="-to_assignee"]');
    if (!agents) return;
    var queue = queueSelect.value;
    Array.prototype.forEach.call(agents.options, function (option) {
      if (!option.dataset.queues) return; // "anyone in the queue"
      var works = !queue || option.dataset.queues.split(" ").indexOf(queue) !== -1;
      option.hidden = !works;
      option.disabled = !works;
      if (!works && option.selected) agents.value = "";
    });
  }
  function selects() {
    return document.querySelectorAll('select[name$="-to_queue"]');
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(selects(), narrow);
  });
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches('select[name$="-to_queue"]')) {
      narrow(event.target);
    }
  });
})();
