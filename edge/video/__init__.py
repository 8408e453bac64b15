"""The video agent: capture -> motion gate -> person detection -> tracking -> rules -> alarms.

The folder follows the pipeline, one stage a module (:mod:`capture`, :mod:`motion`,
:mod:`detect`, :mod:`track`, :mod:`rules`); :mod:`pipeline` is the hot loop that takes every
stage as a parameter, so tests and ``polewatch replay`` feed it recorded or synthetic frames.
"""
