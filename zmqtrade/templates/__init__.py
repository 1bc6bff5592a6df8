"""The starter project `zmqtrade init` writes (package data: the *.tmpl files)."""
