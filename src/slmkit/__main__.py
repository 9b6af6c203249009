from slmkit.cli.main import app

app(prog_name="slmkit")
