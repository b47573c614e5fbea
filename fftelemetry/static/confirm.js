// Ask before sending a form that has a data-confirm question (the records page's deletes).
// A file of its own, not an inline handler: the Content-Security-Policy allows no inline script.
document.addEventListener("submit", function (event) {
  var question = event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
