"""Money in the window (issue 13): what a request will cost, what it costs, what it cost.

- :mod:`~parley.ui.costs.estimate`: the composer's estimate ("≈ N tokens · $X") and its
  context meter, recounted as the person types (the conversation is counted off the GUI
  thread; a keystroke recounts only the draft);
- :mod:`~parley.ui.costs.ticker`: output tokens and dollars ticking up in the status strip
  while an answer streams, replaced by the provider's usage at the end;
- :mod:`~parley.ui.costs.panel` and :mod:`~parley.ui.costs.chart`: the cost panel (a dock):
  this message, this conversation, today, this month, per model and purpose, 30 days of
  daily spend, money saved by caching, CSV export;
- :mod:`~parley.ui.costs.budget`: budget notices at 80 % and the once-a-day confirmation at
  100 %;
- :mod:`~parley.ui.costs.feature`: wires them into the window.

Everything that reads the database runs in worker threads; the one write (a budget
confirmation) is a ``ChatSession`` operation on the database's writer thread.
"""
