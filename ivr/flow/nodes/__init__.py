"""Node kinds; importing this package fills the registry in `ivr.flow.model.NODE_TYPES`."""

from ivr.flow.nodes.collect import CollectNode
from ivr.flow.nodes.hangup import HangupNode
from ivr.flow.nodes.hours import HoursNode
from ivr.flow.nodes.http import HttpNode
from ivr.flow.nodes.menu import MenuNode
from ivr.flow.nodes.queue import QueueNode
from ivr.flow.nodes.record import RecordNode
from ivr.flow.nodes.say import SayNode
from ivr.flow.nodes.set import SetNode
from ivr.flow.nodes.subflow import SubflowNode
from ivr.flow.nodes.switch import SwitchNode
from ivr.flow.nodes.transfer import TransferNode

ALL = (
    SayNode, MenuNode, CollectNode, SetNode, SwitchNode, HoursNode, HttpNode, QueueNode,
    TransferNode, RecordNode, SubflowNode, HangupNode,
)
